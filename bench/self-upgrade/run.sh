#!/usr/bin/env bash
# Replacing the proxy process itself under load: the gateway's worker upgrade (and a worker killed
# with SIGKILL), beside nginx's binary upgrade and HAProxy's master-worker reload.
#
#   bench/self-upgrade/run.sh        environment: DURATION=20 INTERVAL=4 PAUSE_MS=5
#                                    SCENARIOS=gateway-upgrade,gateway-kill9,nginx-upgrade,haproxy-reload
#                                    GATEWAY_BIN=path (skip the build)  KEEP=1 (keep the work dir)
#
# Every scenario runs the same bounded mixed load for DURATION seconds (bench/self-upgrade/load.py:
# GET / on fresh connections, GET / and GET /sleep?ms=300 on keep-alive connections, POST /echo
# with a checked 4 KiB body, WebSocket echo sessions on /ws, and h2c batches with h2load) in front
# of three `gateway demo-backend` processes, and replaces the proxy process every INTERVAL s:
#
#   gateway-upgrade  `gateway run` supervises the 3 instances; POST /upgrade?binary=B on its admin
#                    API, B alternating between two copies of the binary, so each one is a binary
#                    upgrade as nginx's: the new worker runs B, then the keeper re-executes into B.
#                    Time-to-serve: the POST's own duration (it answers once the new worker serves).
#                    Checked each time: /health pid changed, keeper_pid and the instances' pids
#                    (GET /processes) unchanged, worker_generation grew, the keeper runs B.
#   gateway-kill9    the same gateway; once, in the middle, kill -9 of the worker pid from /health.
#                    Time-to-serve: until /health answers from a new worker (keeper and instances as above).
#   nginx-upgrade    nginx (daemon, as its binary upgrade needs; 1 worker; upstream keepalive) in front
#                    of 3 demo backends started here: USR2 to the master, wait for the new master and
#                    its worker, WINCH to the old master, QUIT to it. Time-to-serve: USR2 until a new
#                    connection is answered by a new worker (X-Worker-Pid: $pid).
#   haproxy-reload   haproxy -W (master-worker, listeners passed to the new worker over the
#                    master's socketpair: `-x sockpair@N`, HAProxy >= 2.6; the stats socket also has
#                    `expose-fd listeners`) in front of the same 3 backends: USR2 to the master.
#                    Time-to-serve: USR2 until `show proc` on the master CLI lists the new worker.
#
# Counted (see load.py): requests, failed (wrong status or body, reset or closed after sending, a
# timeout), refused (connect refused), retried (keep-alive GETs re-sent once after their *reused*
# connection closed with zero response bytes, RFC 9112 9.3.1), the longest gap between two
# successful responses within the DURATION (all kinds together). Prints each run's details
# (per kind, failure reasons, the proxy's own log), then one table.
# One proxy thread/worker each (the gateway `threads: 1`, nginx 1 worker, HAProxy nbthread 1);
# old workers get 10 s to drain (shutdown_timeout, worker_shutdown_timeout, hard-stop-after).
# Loopback only (ports 18501-18543); everything started here is stopped by its pid on exit.
set -euo pipefail

DURATION=${DURATION:-20}
INTERVAL=${INTERVAL:-4}
PAUSE_MS=${PAUSE_MS:-5}
SCENARIOS=${SCENARIOS:-gateway-upgrade,gateway-kill9,nginx-upgrade,haproxy-reload}
case ${1:-} in -h | --help) sed -n '2,37s/^# \{0,1\}//p' "$0"; exit 0 ;; "") ;; *) echo "self-upgrade: no arguments; see --help" >&2; exit 2 ;; esac
[[ $DURATION =~ ^[1-9][0-9]*$ && $INTERVAL =~ ^[1-9][0-9]*$ && $PAUSE_MS =~ ^[0-9]+$ ]] || {
    echo "self-upgrade: DURATION and INTERVAL take whole seconds, PAUSE_MS milliseconds" >&2; exit 2; }
[ "$DURATION" -ge 6 ] || { echo "self-upgrade: DURATION must be at least 6 s" >&2; exit 2; }
for scenario in ${SCENARIOS//,/ }; do
    case $scenario in gateway-upgrade | gateway-kill9 | nginx-upgrade | haproxy-reload) ;;
        *) echo "self-upgrade: unknown scenario '$scenario'" >&2; exit 2 ;; esac
done

cd "$(dirname "$0")/../.."
LOAD=bench/self-upgrade/load.py

need=()
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v h2load >/dev/null || need+=(nghttp2-client)
[[ ,$SCENARIOS, == *,nginx-* ]] && ! command -v nginx >/dev/null && need+=(nginx)
[[ ,$SCENARIOS, == *,haproxy-* ]] && ! command -v haproxy >/dev/null && need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

WORK=$(mktemp -d /tmp/gateway-self-upgrade.XXXXXX)
if [ -n "${GATEWAY_BIN:-}" ]; then
    GATEWAY=$GATEWAY_BIN
else
    # A scratch path of our own: the default .build belongs to whoever develops in this tree.
    SCRATCH=.build-bench
    GATEWAY=$SCRATCH/release/gateway
    if [ ! -x "$GATEWAY" ] || [ -n "$(find Sources Package.swift -newer "$GATEWAY" -print -quit)" ]; then
        echo "building the gateway (release, --scratch-path $SCRATCH; a few minutes)"
        nice -n 19 swift build -c release --product gateway --scratch-path "$SCRATCH" > "$WORK/build.log" 2>&1 || {
            tail -20 "$WORK/build.log" >&2; rm -rf "$WORK"; exit 1; }
    fi
fi
GATEWAY=$(cd "$(dirname "$GATEWAY")" && pwd)/$(basename "$GATEWAY")
NGINX=$(command -v nginx || true)   # absolute: nginx re-executes argv[0] at a binary upgrade

GW_PORT=18501; ADMIN_PORT=18502; PROCESS_PORTS=18510-18519
NGINX_PORT=18521; NGINX_H2_PORT=18522; HAPROXY_PORT=18531; HAPROXY_H2_PORT=18532
BACKEND_PORTS=(18541 18542 18543)
for port in $GW_PORT $ADMIN_PORT $(seq ${PROCESS_PORTS%-*} ${PROCESS_PORTS#*-}) $NGINX_PORT $NGINX_H2_PORT \
    $HAPROXY_PORT $HAPROXY_H2_PORT "${BACKEND_PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "self-upgrade: 127.0.0.1:$port is in use; this bench needs ports 18501-18543" >&2; rm -rf "$WORK"; exit 1
    fi
done

declare -A LIVE=()   # pid -> what: our own children, not yet reaped
NGINX_DIR=""         # nginx daemonizes: its masters are found through its pid files

# alive PID: the process exists and is no zombie (a daemon's parent is init, which may reap late).
alive() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]; }

# wait_bounded PID SECONDS: waits for a child of ours; SIGKILL after SECONDS.
wait_bounded() {
    local pid=$1 dog
    (sleep "$2"; kill -KILL "$pid" 2>/dev/null) >/dev/null 2>&1 &
    dog=$!
    WAIT_STATUS=0
    wait "$pid" 2>/dev/null || WAIT_STATUS=$?
    kill "$dog" 2>/dev/null || true
    wait "$dog" 2>/dev/null || true
    unset "LIVE[$pid]"
}
stop() { local pid=$1; [ -n "${LIVE[$pid]:-}" ] || return 0; kill -TERM "$pid" 2>/dev/null || true; wait_bounded "$pid" "${2:-20}"; }

# stop_nginx: every master named by a pid file of ours (the current one, an old one mid-upgrade).
stop_nginx() {
    local file pid i
    [ -n "$NGINX_DIR" ] || return 0
    for file in "$NGINX_DIR/nginx.pid" "$NGINX_DIR/nginx.pid.oldbin"; do
        pid=$(cat "$file" 2>/dev/null) || continue
        [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || continue
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    done
    NGINX_DIR=""
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_nginx
    for pid in "${!LIVE[@]}"; do stop "$pid" 10; done
    if [ -n "${KEEP:-}" ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
until_ok() { # url seconds
    local deadline=$(($(now_ms) + $2 * 1000))
    until curl -sf -o /dev/null --max-time 1 "$1"; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# event KIND START_MS TIME_TO_SERVE_MS OK DETAIL: one line of events.tsv, also printed.
event() {
    local at
    at=$(awk -v t="$(($2 - LOAD_START))" 'BEGIN { printf "%.1f", t / 1000 }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$at" "$3" "$4" "$5" >> "$DIR/events.tsv"
    printf '  t=%5ss %-8s %6s ms  %-4s %s\n' "$at" "$1" "$3" "$([ "$4" = 1 ] && echo ok || echo FAIL)" "$5"
}

start_backends() { # the same three origins for nginx and HAProxy
    local k
    BACKEND_PIDS=()
    for k in 0 1 2; do
        "$GATEWAY" demo-backend --port "${BACKEND_PORTS[$k]}" --name "shop-$((k + 1))" > "$DIR/backend-$((k + 1)).log" 2>&1 &
        LIVE[$!]=backend-$((k + 1)); BACKEND_PIDS+=($!)
    done
    for k in 0 1 2; do until_ok "http://127.0.0.1:${BACKEND_PORTS[$k]}/health" 30 || { echo "backend $k did not start" >&2; return 1; }; done
}

# ---- the gateway ----

start_gateway() {
    cat > "$DIR/gateway.yaml" <<YAML
listeners:
  - listen: 127.0.0.1:$GW_PORT
    protocols: [http1, h2c]
admin: {listen: 127.0.0.1:$ADMIN_PORT}
threads: 1                      # nginx and HAProxy get one worker / thread too
shutdown_timeout: 10s           # how long an old worker drains
deployments:
  - name: shop
    process:
      command: ["gateway", "demo-backend", "--port", "\$PORT"]
      instances: 3
      ports: $PROCESS_PORTS
      health: {http: /health, interval: 500ms}
YAML
    cp "$GATEWAY" "$DIR/gateway-b"
    BINARIES=("$DIR/gateway-b" "$GATEWAY"); UPGRADES=0
    "$GATEWAY" run --config "$DIR/gateway.yaml" > "$DIR/gateway.log" 2>&1 &
    PROXY_PID=$!; LIVE[$PROXY_PID]=gateway
    python3 "$LOAD" wait-ready --admin-port $ADMIN_PORT --count 3 --timeout 60 && until_ok "http://127.0.0.1:$GW_PORT/" 10 ||
        { echo "the gateway did not get ready" >&2; tail -20 "$DIR/gateway.log" >&2; return 1; }
}

gateway_upgrade() {
    local pid keeper gen inst pid2 keeper2 gen2 inst2 t0 t1 code exe ok=1
    local binary=${BINARIES[$((UPGRADES % 2))]}; UPGRADES=$((UPGRADES + 1))
    read -r pid keeper gen inst < <(python3 "$LOAD" gateway-state --admin-port $ADMIN_PORT)
    t0=$(now_ms)
    code=$(curl -s -o "$DIR/upgrade.json" -w '%{http_code}' -X POST --max-time 60 \
        "http://127.0.0.1:$ADMIN_PORT/upgrade?binary=$binary") || code=000
    t1=$(now_ms)
    read -r pid2 keeper2 gen2 inst2 < <(python3 "$LOAD" gateway-state --admin-port $ADMIN_PORT || echo "? ? 0 ?")
    # The keeper follows once the new worker accepts; give it a moment to re-execute.
    local target; target=$(readlink -f "$binary")
    for _ in $(seq 50); do exe=$(readlink "/proc/$keeper/exe" || true); [ "$exe" = "$target" ] && break; sleep 0.02; done
    [ "$code" = 200 ] && [ "$pid2" != "$pid" ] && [ "$keeper2" = "$keeper" ] && [ "$inst2" = "$inst" ] && [ "$gen2" -gt "$gen" ] &&
        [ "$exe" = "$target" ] || ok=0
    event upgrade "$t0" $((t1 - t0)) $ok "HTTP $code; worker $pid -> $pid2, generation $gen -> $gen2, keeper $keeper -> $keeper2 (runs $(basename "$exe")), instances [$inst] -> [$inst2]"
    [ $ok = 1 ] || sed 's/^/      /' "$DIR/upgrade.json"
}

gateway_kill9() {
    local pid keeper gen inst pid2="" keeper2 gen2 inst2 t0 t1 ok=1
    read -r pid keeper gen inst < <(python3 "$LOAD" gateway-state --admin-port $ADMIN_PORT)
    t0=$(now_ms)
    kill -KILL "$pid"
    # curl in the loop, not python: a poll every ~10 ms; the first answer from a new worker ends it.
    while [ "$(now_ms)" -lt $((t0 + 10000)) ]; do
        pid2=$(curl -s --max-time 1 "http://127.0.0.1:$ADMIN_PORT/health" | sed -n 's/^ *"pid" *: *\([0-9]*\).*/\1/p')
        [ -n "$pid2" ] && [ "$pid2" != "$pid" ] && break
        sleep 0.01
    done
    t1=$(now_ms)
    read -r pid2 keeper2 gen2 inst2 < <(python3 "$LOAD" gateway-state --admin-port $ADMIN_PORT || echo "? ? 0 ?")
    [ "$pid2" != "$pid" ] && [ "$keeper2" = "$keeper" ] && [ "$inst2" = "$inst" ] || ok=0
    event kill-9 "$t0" $((t1 - t0)) $ok "worker $pid -> $pid2, generation $gen -> $gen2, keeper $keeper -> $keeper2, instances [$inst] -> [$inst2]"
}

stop_gateway() {
    stop "$PROXY_PID" 30
    echo "  gateway log: $(grep -c 'new worker serving' "$DIR/gateway.log" || true) handovers," \
        "$(grep -c 'keeper re-executed in place' "$DIR/gateway.log" || true) keeper re-executions," \
        "$(grep -c 'worker handover finished' "$DIR/gateway.log" || true) old workers drained," \
        "$(grep -c 'exited unexpectedly' "$DIR/gateway.log" || true) unexpected worker exits;" \
        "warnings/errors by message:"
    grep -E '^[0-9T:+-]+ (warning|error|critical) ' "$DIR/gateway.log" | sed -E 's/^[^ ]+ ([a-z]+) ([a-z]+): .*\] /\1 \2: /' |
        sort | uniq -c | sort -rn | head -8 | sed 's/^/    /' || true
}

# ---- nginx: binary upgrade (USR2, WINCH, QUIT) ----

start_nginx() {
    start_backends
    cat > "$DIR/nginx.conf" <<CONF
worker_processes 1;
worker_shutdown_timeout 10s;     # an old worker's bound, like the gateway's shutdown_timeout
pid $DIR/nginx.pid;
error_log $DIR/error.log notice;
events { worker_connections 4096; }
http {
    access_log off;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
    upstream shop {
        server 127.0.0.1:${BACKEND_PORTS[0]};
        server 127.0.0.1:${BACKEND_PORTS[1]};
        server 127.0.0.1:${BACKEND_PORTS[2]};
        keepalive 64;
    }
    # No keepalive for upgrades: the demo backend takes an Upgrade only as the first request of
    # a connection (426 on a reused one), and nginx would send it on a pooled connection.
    upstream shop_ws {
        server 127.0.0.1:${BACKEND_PORTS[0]};
        server 127.0.0.1:${BACKEND_PORTS[1]};
        server 127.0.0.1:${BACKEND_PORTS[2]};
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        listen 127.0.0.1:$NGINX_H2_PORT http2;   # h2c with prior knowledge
        add_header X-Worker-Pid \$pid always;     # which worker answered: the time-to-serve probe
        location / {
            proxy_pass http://shop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /ws {
            proxy_pass http://shop_ws;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
        }
    }
}
CONF
    # Daemonized on purpose: with `daemon off` nginx ignores USR2 ("the changing binary signal
    # is ignored") because its parent never changes. It is stopped through its pid file.
    NGINX_DIR=$DIR
    "$NGINX" -p "$DIR" -c "$DIR/nginx.conf"
    until_ok "http://127.0.0.1:$NGINX_PORT/" 30 || { echo "nginx did not start" >&2; cat "$DIR/error.log" >&2; return 1; }
}

nginx_upgrade() {
    local t0 ms detail ok=1
    t0=$(now_ms)
    # In python, so that the clock starts at the USR2 itself and polls without forking.
    read -r ms detail < <(python3 "$LOAD" nginx-upgrade --dir "$DIR" --port $NGINX_PORT) || true
    [[ ${ms:-} =~ ^[0-9]+$ ]] || ok=0
    event upgrade "$t0" "${ms:--}" $ok "$detail"
}

stop_nginx_run() {
    stop_nginx
    for pid in "${BACKEND_PIDS[@]}"; do stop "$pid"; done
    echo "  nginx error.log above notice, by message:"
    grep -vE '\[notice\]' "$DIR/error.log" | sed -E 's/^[0-9/]+ [0-9:]+ \[([a-z]+)\] [0-9#]+: (\*[0-9]+ )?/[\1] /; s/, client: .*//' |
        sort | uniq -c | sort -rn | head -8 | sed 's/^/    /' || true
}

# ---- HAProxy: master-worker reload (USR2 to the master) ----

start_haproxy() {
    start_backends
    cat > "$DIR/haproxy.cfg" <<CFG
global
    maxconn 4096
    nbthread 1
    hard-stop-after 10s                 # an old worker's bound, like the gateway's shutdown_timeout
    # Before 2.6 this was how a reload got the listeners (-x); with -W, 2.6 passes them over the
    # master's socketpair (-x sockpair@N) by itself. Kept for older versions.
    stats socket $DIR/stats.sock mode 600 level admin expose-fd listeners
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 60s
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT
    bind 127.0.0.1:$HAPROXY_H2_PORT proto h2    # h2c with prior knowledge
    default_backend shop
backend shop
    http-reuse safe
    server shop-1 127.0.0.1:${BACKEND_PORTS[0]}
    server shop-2 127.0.0.1:${BACKEND_PORTS[1]}
    server shop-3 127.0.0.1:${BACKEND_PORTS[2]}
CFG
    haproxy -W -db -S "$DIR/master.sock" -f "$DIR/haproxy.cfg" > "$DIR/haproxy.log" 2>&1 &
    PROXY_PID=$!; LIVE[$PROXY_PID]=haproxy
    until_ok "http://127.0.0.1:$HAPROXY_PORT/" 30 || { echo "haproxy did not start" >&2; cat "$DIR/haproxy.log" >&2; return 1; }
}

haproxy_reload() {
    local t0 ms old new ok=1 cmdline
    t0=$(now_ms)
    read -r ms old new < <(python3 "$LOAD" haproxy-reload --master "$PROXY_PID" --socket "$DIR/master.sock") || true
    [[ ${ms:-} =~ ^[0-9]+$ ]] || ok=0
    cmdline=$(tr '\0' ' ' < "/proc/${new%%,*}/cmdline" 2>/dev/null || true)
    [[ $cmdline == *" -x "* ]] || ok=0   # the listeners came from the old worker, not from a new bind
    event reload "$t0" "${ms:--}" $ok "master $PROXY_PID, worker $old -> $new ($(grep -o -- '-x [^ ]*' <<< "$cmdline" || echo 'no -x'))"
}

stop_haproxy() {
    stop "$PROXY_PID"
    for pid in "${BACKEND_PIDS[@]}"; do stop "$pid"; done
    echo "  haproxy output, warnings and alerts by message:"
    grep -E 'WARNING|ALERT' "$DIR/haproxy.log" | sed -E 's/\([0-9]+\)/(N)/g; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -6 | sed 's/^/    /' || true
}

# ---- one scenario: start, load, the replacements on a schedule, stop ----

run() { # scenario peer start-fn http-port h2-port event-fn schedule stop-fn
    local scenario=$1 peer=$2 http=$4 h2=$5 action=$6 schedule=$7 load at
    DIR=$WORK/$scenario; mkdir -p "$DIR"; : > "$DIR/events.tsv"
    echo
    echo "=== $scenario: $DURATION s of load, $8"
    "$3"
    LOAD_START=$(now_ms)
    python3 "$LOAD" load --http-port "$http" --h2-port "$h2" --duration "$DURATION" --pause-ms "$PAUSE_MS" --t0-ms "$LOAD_START" \
        --label "$scenario" --json "$DIR/result.json" > "$DIR/load.txt" 2>&1 &
    load=$!; LIVE[$load]=load
    for at in $schedule; do
        # Absolute times from the load's start: the checks around each event do not shift the next.
        while [ "$(now_ms)" -lt $((LOAD_START + at)) ]; do sleep 0.01; done
        "$action"
    done
    wait_bounded "$load" $((DURATION + 60))
    cat "$DIR/load.txt"
    [ "$WAIT_STATUS" -eq 0 ] || echo "  (the load driver ended with status $WAIT_STATUS)"
    "$9"
    python3 "$LOAD" annotate "$DIR/result.json" --peer "$peer" --scenario "$scenario" --events "$DIR/events.tsv"
    RESULTS+=("$DIR/result.json")
}

# Every INTERVAL s from INTERVAL/2 on, the last at least 2 s before the load ends (milliseconds).
every=""; for ((t = INTERVAL * 500; t <= (DURATION - 2) * 1000; t += INTERVAL * 1000)); do every+="$t "; done
middle=$((DURATION * 500))

echo "self-upgrade under load: ${DURATION} s per scenario, a replacement every ${INTERVAL} s;" \
    "$("$GATEWAY" version | head -1), $( [ -n "$NGINX" ] && "$NGINX" -v 2>&1 | sed 's/.*: //'), $(command -v haproxy >/dev/null && haproxy -v | head -1 | cut -d' ' -f1-3);" \
    "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
RESULTS=()
for scenario in ${SCENARIOS//,/ }; do
    case $scenario in
        gateway-upgrade) run gateway-upgrade gateway start_gateway $GW_PORT $GW_PORT gateway_upgrade "$every" \
            "POST /upgrade every $INTERVAL s" stop_gateway ;;
        gateway-kill9) run gateway-kill9 gateway start_gateway $GW_PORT $GW_PORT gateway_kill9 "$middle" \
            "kill -9 of the worker at $((middle / 1000)) s" stop_gateway ;;
        nginx-upgrade) run nginx-upgrade nginx start_nginx $NGINX_PORT $NGINX_H2_PORT nginx_upgrade "$every" \
            "binary upgrade (USR2, WINCH, QUIT) every $INTERVAL s" stop_nginx_run ;;
        haproxy-reload) run haproxy-reload haproxy start_haproxy $HAPROXY_PORT $HAPROXY_H2_PORT haproxy_reload "$every" \
            "master-worker reload (USR2) every $INTERVAL s" stop_haproxy ;;
    esac
done

echo
echo "=== summary (${DURATION} s each; time-to-serve: see --help for what each peer's clock measures)"
python3 "$LOAD" summary "${RESULTS[@]}"
