# Shared pieces of the benchmarks that put the gateway beside nginx and HAProxy
# (proxy-vs-peers.sh, h2-vs-peers.sh, idle-connections/run.sh, allocations.sh, profile.sh).
# Sourced, not run.
#
# The caller sets BENCH (its name, for messages) and WORK (its mktemp directory) and calls
# `stop_started` from its EXIT trap. Long-running commands (load generators) run in the
# foreground of the script's own shell, never inside $(...) or <(...), so that a script that
# stops early leaves no subshell behind it. Everything here is bounded (every wait is a poll
# with a limit), talks to 127.0.0.1 only, and stops only the processes the caller started, by
# PID.

die() { echo "$BENCH: $*" >&2; exit 1; }

# need_tools "tool:package" ...: fail naming the apt package of every missing tool.
need_tools() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair%%:*} (apt-get install ${pair#*:})")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}"
}

# free_ports N: N distinct free loopback ports (all bound at once, so none is handed out twice).
free_ports() {
    python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# --- processes ------------------------------------------------------------------------------
# Every process started is remembered as "pid:starttime" (field 22 of /proc/PID/stat), so a PID
# reused by someone else after ours exited is never signalled.
STARTED=()
# start_time_of PID: prints nothing (and still succeeds) when the process is gone.
start_time_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }' || true; }
remember() { local st; st=$(start_time_of "$1") || true; STARTED+=("$1:${st:-?}"); }
# same_process PID STARTTIME: it still runs (a zombie does not: it is reaped if it is ours).
same_process() {
    local now state
    read -r state now < <(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $1, $20 }') || return 1
    if [ "$state" = Z ]; then wait "$1" 2>/dev/null || true; return 1; fi
    [ -n "$now" ] && { [ "$2" = "?" ] || [ "$now" = "$2" ]; }
}
# children_of PID: the PIDs of its child processes (all threads' children).
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | awk 'NF' || true; }

# stop_one PID STARTTIME: SIGTERM, up to 5 s, SIGKILL; then SIGKILL any of its children (noted
# before the TERM) that outlived it, such as the gateway's worker or nginx's workers.
stop_one() {
    local pid=$1 st=$2 kids=() kid
    same_process "$pid" "$st" || { wait "$pid" 2>/dev/null || true; return 0; }
    for kid in $(children_of "$pid"); do kids+=("$kid:$(start_time_of "$kid")"); done
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do same_process "$pid" "$st" || break; sleep 0.1; done
    if same_process "$pid" "$st"; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
    for kid in "${kids[@]}"; do
        same_process "${kid%%:*}" "${kid#*:}" && kill -KILL "${kid%%:*}" 2>/dev/null || true
    done
}
stop_pid() { # pid: stop one process this script started (and forget it)
    local entry rest=()
    for entry in "${STARTED[@]}"; do
        if [ "${entry%%:*}" = "$1" ]; then stop_one "${entry%%:*}" "${entry#*:}"; else rest+=("$entry"); fi
    done
    STARTED=("${rest[@]}")
}
stop_started() { # everything still remembered, the newest first; for EXIT traps, so never fails
    set +e
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_one "${STARTED[$i]%%:*}" "${STARTED[$i]#*:}"
    done
    STARTED=()
}

# cpu_ticks PID...: user + system time of the processes (all threads) in clock ticks. Fields are
# counted after the ")" that ends the command name, which may hold spaces.
cpu_ticks() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
# cpu_split PID...: the same, as "user system" clock ticks (where the time goes: the proxy's own
# code, or the kernel's sockets and wake-ups).
cpu_split() {
    local pid u=0 s=0 pu ps
    for pid in "$@"; do
        read -r pu ps < <(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12, $13 }') || { pu=0; ps=0; }
        u=$((u + ${pu:-0})); s=$((s + ${ps:-0}))
    done
    echo "$u $s"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# status_kb PID FIELD: a kB value from /proc/PID/status (VmRSS, VmHWM, ...).
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }
# pss_kb PID: Pss from /proc/PID/smaps_rollup, empty if it cannot be read.
pss_kb() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || true; }

# wait_http NAME PID URL LOG [SECONDS]: poll (bounded, default 10 s) until URL answers 200 (an
# https URL may have a self-signed certificate: the benchmarks make their own).
wait_http() {
    local name=$1 pid=$2 url=$3 log=$4 limit=${5:-10} i
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2 2>/dev/null || true; die "$name exited before it was ready (log above)"; }
        [ "$(curl -sk -o /dev/null --max-time 2 -w '%{http_code}' "$url" 2>/dev/null || true)" = 200 ] && return 0
        sleep 0.1
    done
    tail -n 20 "$log" >&2 2>/dev/null || true
    die "$name not ready at $url after ${limit}s (log above)"
}

# --- allocation counting (bench/allocations.sh, bench/allocations-h2.sh) ---------------------
# build_alloc_counter DIR: builds bench/allocations/count-allocs.c into DIR and prints its path
# (to LD_PRELOAD with ALLOC_COUNT_DIR set; its header says what it counts and why).
build_alloc_counter() {
    cc -O2 -Wall -Wextra -shared -fPIC -o "$1/count-allocs.so" bench/allocations/count-allocs.c >&2 \
        || die "could not build the counter library (cc)"
    echo "$1/count-allocs.so"
}
# alloc_counters FILE: "allocations frees bytes malloc calloc realloc aligned" from one process's
# counter file (aligned = posix_memalign + aligned_alloc + memalign + valloc; "bad" when the file
# is not one); see count-allocs.c for the layout.
alloc_counters() {
    od -An -v -t u8 -w8 -N 88 "$1" | awk '{ w[NR - 1] = $1 } END {
        if (w[0] != 4705219614009937492) { print "bad"; exit }
        printf "%d %d %d %d %d %d %d\n", w[2] + w[3] + w[4] + w[5] + w[6] + w[7] + w[8], w[9], w[10],
            w[2], w[3], w[4], w[5] + w[6] + w[7] + w[8] }'
}

# --- the gateway ----------------------------------------------------------------------------
# gateway_binary PATH: echo an absolute path to the release binary; with PATH empty, build it
# once into the repository's .build-release (GATEWAY_SCRATCH overrides the scratch path).
gateway_binary() {
    local bin=$1 scratch=${GATEWAY_SCRATCH:-$PWD/.build-release}
    if [ -z "$bin" ]; then
        command -v swift >/dev/null || die "swift missing (needed to build the gateway; or pass --gateway PATH)"
        echo "$BENCH: building the gateway (swift build -c release --scratch-path $scratch --product gateway)" >&2
        swift build -c release --scratch-path "$scratch" --product gateway >&2 || die "the gateway did not build"
        bin=$scratch/release/gateway
    fi
    [ -x "$bin" ] || die "gateway binary not found or not executable: $bin"
    echo "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
}

# gateway_worker KEEPER: the PID of the `gateway _worker` process the keeper spawned (waits up
# to 10 s for it), or nothing.
gateway_worker() {
    local kid
    for _ in $(seq 1 100); do
        for kid in $(children_of "$1"); do
            tr '\0' ' ' < "/proc/$kid/cmdline" 2>/dev/null | grep -q ' _worker' && { echo "$kid"; return 0; }
        done
        sleep 0.1
    done
}

# gateway_supervisors KEEPER: the keeper and its children other than the worker (the `_watchdog`),
# whose CPU is reported apart from the worker's.
gateway_supervisors() {
    local kid worker; worker=$(gateway_worker "$1")
    echo "$1"
    for kid in $(children_of "$1"); do [ "$kid" = "$worker" ] || echo "$kid"; done
}

# proxy_pids TARGET MAINPID: the processes that do the proxying, whose CPU and memory count:
# the gateway's worker (not the keeper), nginx's worker processes (not the master), HAProxy
# itself (started with -db, without -W, it is one process).
proxy_pids() {
    case $1 in
        gateway) gateway_worker "$2" ;;
        nginx) children_of "$2" ;;
        *) echo "$2" ;;
    esac
}

# --- the origin: one nginx worker answering every request with the same 100-byte body -------
ORIGIN_BODY="$(printf '%099d' 0 | tr 0 x)\\n"   # 99 x and nginx's \n escape: 100 bytes
# start_origin DIR PORT: start it, remember it, set ORIGIN_PID, wait until it answers.
start_origin() {
    mkdir -p "$1"
    cat > "$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    server {
        listen 127.0.0.1:$2 backlog=4096;
        location / { default_type text/plain; return 200 "$ORIGIN_BODY"; }
    }
}
CONF
    nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" > "$1/out.log" 2>&1 &
    ORIGIN_PID=$!; remember $ORIGIN_PID
    wait_http origin $ORIGIN_PID "http://127.0.0.1:$2/" "$1/error.log"
    local size; size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$2/")
    [ "$size" = 100 ] || die "origin body is $size bytes, not 100"
}

# --- statistics -----------------------------------------------------------------------------
# median [FORMAT] of the numbers on stdin (blank-separated), printed with FORMAT (default %g);
# "n/a" when there are none.
# nginx as a peer: a proxy to the origin on $ORIGIN_PORT with upstream keep-alive, one
# configuration for every benchmark. Writes DIR/nginx.conf.
#   nginx_proxy_conf DIR WORKERS CONNECTIONS "LISTEN and TLS lines" ["more http lines"]
nginx_proxy_conf() {
    local dir=$1 workers=$2 connections=$3 listen=$4 more=${5:-}
    cat > "$dir/nginx.conf" <<CONF
worker_processes $workers;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $((connections + 1024));
events { worker_connections $connections; }
http {
    access_log off;
    keepalive_requests 100000000;
    $more
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 256;
        keepalive_requests 100000000;
    }
    server {
        $listen
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
}

# HAProxy as a peer, the same for every benchmark: http mode, upstream reuse. Writes DIR/haproxy.cfg.
#   haproxy_proxy_conf DIR THREADS MAXCONN "bind line" [keep-alive seconds] ["more global lines"]
haproxy_proxy_conf() {
    local dir=$1 threads=$2 maxconn=$3 bind=$4 keepalive=${5:-60} more=${6:-}
    cat > "$dir/haproxy.cfg" <<CONF
global
    nbthread $threads
    maxconn $maxconn
    $more
defaults
    mode http
    maxconn $maxconn
    timeout connect 5s
    timeout client ${keepalive}s
    timeout server 60s
    timeout http-keep-alive ${keepalive}s
frontend fe
    $bind
    default_backend origin
backend origin
    http-reuse always
    server origin 127.0.0.1:$ORIGIN_PORT
CONF
}

# The gateway as a proxy to the origin, the same for every benchmark. Writes FILE.
#   gateway_proxy_conf FILE THREADS "listen lines" ["more top-level lines"]
gateway_proxy_conf() {
    cat > "$1" <<CONF
$3
admin: {listen: 127.0.0.1:$ADMIN_PORT}
threads: $2
${4:-}
deployments:
  - name: origin
    backends: [127.0.0.1:$ORIGIN_PORT]
CONF
}

median() { tr ' ' '\n' | awk 'NF && $1 != "n/a"' | sort -g | awk -v f="${1:-%g}" '{ a[NR] = $1 } END {
    if (NR == 0) print "n/a"; else printf f "\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# ratio A B [format]: A / B, "n/a" when either is missing or B is 0.
ratio() { awk -v a="$1" -v b="$2" -v f="${3:-%.3f}" 'BEGIN {
    if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf f "\n", a / b }'; }
