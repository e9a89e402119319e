#!/usr/bin/env bash
# Memory per idle keep-alive connection: the gateway beside nginx and HAProxy, one worker each,
# in front of the same origin (one nginx worker, fixed 100-byte body).
#
#   bench/idle-connections/run.sh [--rounds 3] [--conns 5000] [--settle 8] [--gateway PATH]
#                                 [--only gateway,nginx,haproxy]
#
# Each round starts every target afresh (the order rotating by one per round) and:
#   1. warms it up with 400 requests on 4 keep-alive connections;
#   2. waits until the proxying process's VmRSS is steady (bounded poll) and reads VmRSS
#      (/proc/PID/status) and Pss (/proc/PID/smaps_rollup) - the gateway's worker, not its
#      keeper; nginx's worker, not its master; HAProxy itself;
#   3. opens --conns client connections, sends ONE complete GET on each and reads its whole
#      response, so each is an idle keep-alive connection that has served a request, and holds
#      them all open;
#   4. waits --settle seconds (default 8: longer than the gateway's park_idle of 5 s plus the
#      second its memory trim waits after the last park; the same wait for all three), then until
#      VmRSS is steady again, reads both again, and checks that the connections are still open
#      (and that the process holds that many more file descriptors);
#   5. closes them and stops the target.
# Prints per run (after - before) / conns in bytes, for RSS and Pss, and the medians per target.
# This is the proxy process's own memory only: the kernel's socket memory (buffers, socket
# structures) is not in any process's RSS and is the same for all three.
# Timeouts are set long enough for the hold (gateway timeouts.idle, nginx keepalive_timeout,
# HAProxy timeout http-keep-alive/client: 300 s). Raises ulimit -n (fails if it cannot).
# Bounded: each step has a time limit; loopback only; temporary files in a mktemp directory
# removed at exit; everything started is stopped by PID.
set -euo pipefail
BENCH=idle-connections

usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --rounds N       rounds (default 8)
  --conns N        idle connections to hold (default 5000)
  --settle S       seconds to wait after the connections are idle before reading (default 3)
  --gateway PATH   gateway binary (default: build .build-release/release/gateway once;
                   GATEWAY_SCRATCH=DIR builds into DIR instead)
  --only LIST      comma-separated subset of gateway,nginx,haproxy
EOF
}

ROUNDS=3; CONNS=5000; SETTLE=8; GATEWAY=""; ONLY=gateway,nginx,haproxy
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "$BENCH: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
        --conns) need_value "$@"; CONNS=$2; shift 2 ;;
        --settle) need_value "$@"; SETTLE=$2; shift 2 ;;
        --gateway) need_value "$@"; GATEWAY=$2; shift 2 ;;
        --only) need_value "$@"; ONLY=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; echo "$BENCH: unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ -n "$GATEWAY" ] && [[ $GATEWAY != /* ]]; then GATEWAY=$PWD/$GATEWAY; fi
cd "$(dirname "$0")/../.."
. bench/lib/peers.sh
CLIENT=$PWD/bench/idle-connections/client.py

for pair in "rounds:$ROUNDS" "conns:$CONNS"; do
    [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
[[ $SETTLE =~ ^[0-9]+$ ]] || die "--settle must be a whole number of seconds, got '$SETTLE'"
[ "$CONNS" -le 20000 ] || die "--conns: at most 20000 (one client address, the ephemeral ports)"
for t in ${ONLY//,/ }; do case $t in gateway|nginx|haproxy) ;; *) die "--only: unknown target '$t'" ;; esac; done
TARGETS=()
for t in gateway nginx haproxy; do [[ ,$ONLY, == *,$t,* ]] && TARGETS+=("$t"); done
[ ${#TARGETS[@]} -gt 0 ] || die "--only names no target"
has() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

tools=(curl:curl python3:python3 timeout:coreutils nginx:nginx)
has haproxy && tools+=(haproxy:haproxy)
need_tools "${tools[@]}"
has gateway && GATEWAY=$(gateway_binary "$GATEWAY")

# Descriptors: the client holds CONNS, the proxy CONNS plus its upstream and listening sockets;
# HAProxy sizes its own need from maxconn (about 2 per connection) and raises its limit up to
# the hard one. All children inherit this limit.
HAPROXY_MAXCONN=$((CONNS + 1000))
WANT=$((CONNS + 2000))
has haproxy && WANT=$((2 * HAPROXY_MAXCONN + 1000))
HARD=$(ulimit -Hn)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$WANT" ]; then
    if [ "$HARD" = unlimited ] || [ "$HARD" -ge "$WANT" ]; then
        ulimit -n "$WANT" || die "cannot raise ulimit -n to $WANT"
    else
        [ "$HARD" -ge $((CONNS + 2000)) ] && has haproxy && \
            echo "$BENCH: note: ulimit -n hard limit $HARD is below HAProxy's ~$WANT for maxconn $HAPROXY_MAXCONN; it may warn" >&2
        [ "$HARD" -ge $((CONNS + 2000)) ] || die "ulimit -n can only be raised to $HARD, $((CONNS + 2000)) needed for --conns $CONNS (lower --conns, or raise the hard limit)"
        ulimit -n "$HARD" || die "cannot raise ulimit -n to $HARD"
    fi
fi

WORK=$(mktemp -d /tmp/idle-connections.XXXXXX)
trap 'set +e; exec 3>&- 2>/dev/null; stop_started; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r ORIGIN_PORT GATEWAY_PORT ADMIN_PORT NGINX_PORT HAPROXY_PORT < <(free_ports 5)
declare -A PORT=([gateway]=$GATEWAY_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
start_origin "$WORK/origin" "$ORIGIN_PORT"

# start_target T DIR: start a fresh T, set MAIN_PID, wait until it answers.
start_target() {
    local t=$1 dir=$2
    mkdir -p "$dir"
    case $t in
    gateway)
        gateway_proxy_conf "$dir/gateway.yaml" 1 "listen: 127.0.0.1:$GATEWAY_PORT" "timeouts: {idle: 300s}"
        "$GATEWAY" run --config "$dir/gateway.yaml" --log-level warning > "$dir/out.log" 2>&1 & ;;
    nginx)
        nginx_proxy_conf "$dir" 1 $((CONNS * 2 + 2000)) "listen 127.0.0.1:$NGINX_PORT backlog=4096;" "keepalive_timeout 300s;"
        nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" > "$dir/out.log" 2>&1 & ;;
    haproxy)
        haproxy_proxy_conf "$dir" 1 "$HAPROXY_MAXCONN" "bind 127.0.0.1:$HAPROXY_PORT" 300
        haproxy -db -f "$dir/haproxy.cfg" > "$dir/out.log" 2>&1 & ;;
    esac
    MAIN_PID=$!; remember "$MAIN_PID"
    wait_http "$t" "$MAIN_PID" "http://127.0.0.1:${PORT[$t]}/" "$dir/out.log" 20
}

# steady_rss PID: poll VmRSS every 0.5 s until four readings in a row lie within 16 kB of each
# other (at most 30 s); sets RSS (kB) and STEADY (steady or unsteady). Runs in this shell.
steady_rss() {
    local pid=$1 samples=() spread i
    STEADY=unsteady
    for ((i = 0; i < 60; i++)); do
        RSS=$(status_kb "$pid" VmRSS); [ -n "$RSS" ] || die "process $pid is gone"
        samples+=("$RSS")
        if [ ${#samples[@]} -ge 4 ]; then
            spread=$(printf '%s\n' "${samples[@]: -4}" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print hi - lo }')
            if [ "$spread" -le 16 ]; then STEADY=steady; return 0; fi
        fi
        sleep 0.5
    done
}
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
per_conn() { ratio "$(( ($2 - $1) * 1024 ))" "$CONNS" %.0f; }   # before_kb after_kb -> bytes

echo "$BENCH  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), ulimit -n $(ulimit -n)"
echo "versions: $(nginx -v 2>&1 | sed 's/.*: //')$(has haproxy && echo "; $(haproxy -v | head -1 | cut -d' ' -f1-3)")$(has gateway && echo "; gateway $("$GATEWAY" --version 2>&1 | head -1) ($GATEWAY)")"
echo "$CONNS idle keep-alive connections, each after one GET of a 100-byte body; $ROUNDS rounds; one worker each"
echo
printf '%-5s %-8s %7s %6s %6s %10s %10s %8s %10s %10s %8s  %s\n' round target held failed fds+ \
    'RSS kB' 'after kB' 'B/conn' 'Pss kB' 'after kB' 'B/conn' note

declare -A RSS_PER PSS_PER
for round in $(seq 1 "$ROUNDS"); do
    order=()
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do order+=("${TARGETS[$(((i + round - 1) % ${#TARGETS[@]}))]}"); done
    for t in "${order[@]}"; do
        dir=$WORK/$t-$round
        start_target "$t" "$dir"
        pid=$(proxy_pids "$t" "$MAIN_PID" | head -1)
        [ -n "$pid" ] || die "no proxying process found for $t (main pid $MAIN_PID)"
        timeout 60 python3 "$CLIENT" warm --port "${PORT[$t]}" --requests 400 --conns 4 > "$dir/warm.txt" 2>&1 \
            || die "$t: warm-up failed: $(tail -n 3 "$dir/warm.txt")"
        steady_rss "$pid"; rss0=$RSS; st0=$STEADY
        pss0=$(pss_kb "$pid"); fds0=$(fd_count "$pid")

        rm -f "$WORK/ctl"; mkfifo "$WORK/ctl"
        exec 3<>"$WORK/ctl"
        timeout 300 python3 "$CLIENT" hold --port "${PORT[$t]}" --conns "$CONNS" --parallel 200 --timeout 120 \
            < "$WORK/ctl" > "$dir/hold.txt" 2> "$dir/hold.err" &
        CLIENT_PID=$!; remember "$CLIENT_PID"
        for ((i = 0; i < 1300; i++)); do
            grep -q '^ready ' "$dir/hold.txt" && break
            kill -0 "$CLIENT_PID" 2>/dev/null || break
            sleep 0.1
        done
        read -r _ held failed closed < <(grep '^ready ' "$dir/hold.txt" || echo "ready 0 $CONNS 0")
        sleep "$SETTLE"
        steady_rss "$pid"; rss1=$RSS; st1=$STEADY
        pss1=$(pss_kb "$pid"); fds1=$(fd_count "$pid")
        echo close >&3
        for ((i = 0; i < 100; i++)); do kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
        stop_pid "$CLIENT_PID"
        exec 3>&-
        still=$(awk '$1 == "still-open" { print $2 }' "$dir/hold.txt")

        note=""
        [ "$st0" = steady ] && [ "$st1" = steady ] || note="RSS not steady within 30 s ($st0/$st1) "
        [ "$failed" = 0 ] || note+="$failed failed: $(head -c 150 "$dir/hold.err" | tr '\n' ' ') "
        [ "$closed" = 0 ] && [ "${still:-0}" = "$held" ] || note+="closed by the proxy: $closed before, $((held - ${still:-0})) by the end "
        rss_b=$(per_conn "$rss0" "$rss1")
        pss_b=n/a; [ -n "$pss0" ] && [ -n "$pss1" ] && pss_b=$(per_conn "$pss0" "$pss1")
        printf '%-5s %-8s %7s %6s %6s %10s %10s %8s %10s %10s %8s  %s\n' "$round" "$t" "$held" "$failed" \
            $((fds1 - fds0)) "$rss0" "$rss1" "$rss_b" "${pss0:-n/a}" "${pss1:-n/a}" "$pss_b" "$note"
        if [ "$held" = "$CONNS" ]; then RSS_PER[$t]+="$rss_b "; PSS_PER[$t]+="$pss_b "; fi
        stop_pid "$MAIN_PID"
    done
done

echo
echo "medians over the rounds where all $CONNS connections were held (bytes of the proxy process's memory per idle connection):"
for t in "${TARGETS[@]}"; do
    printf '  %-8s RSS %6s B/conn   Pss %6s B/conn   [RSS per round: %s]\n' "$t" \
        "$(echo "${RSS_PER[$t]:-}" | median %.0f)" "$(echo "${PSS_PER[$t]:-}" | median %.0f)" "$(echo ${RSS_PER[$t]:-none})"
done
echo "note: RSS of the proxy process only; kernel socket memory (buffers, socket structures) is in"
echo "no process's RSS and not counted here."
