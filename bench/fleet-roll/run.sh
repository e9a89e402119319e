#!/usr/bin/env bash
# A fleet roll and an agent drain across two gateways (127.0.0.2 and 127.0.0.3 standing for two
# hosts) under a mixed load, with one etcd member, all on loopback:
#   - deployment `shop`: two supervised instances on each gateway, rolled with
#     `gateway restart shop --fleet` (at most one host at once);
#   - deployment `web`: two backends registered by `gateway agent` (demo backends), one of them
#     drained with `gateway agent drain` during the load.
# Prints requests and failed (per the whole load), how long the fleet roll took, the longest time
# the drained backend took to leave every gateway's rotation after `draining` was written, and
# the time from an etcd change to every gateway reporting it applied (median and max of
# --changes writes, timed from just before the write until both reports carry its revision; a
# gateway writes its report as soon as a change reached all its event loops).
#
#   bench/fleet-roll/run.sh [--gateway PATH] [--duration 20] [--connections 16] [--changes 10]
#
# Bounded: the load runs --duration seconds (at most 500,000 requests); every wait is a bounded
# poll. Everything started is stopped by PID at exit; temporary files in a mktemp directory.
set -euo pipefail
BENCH=fleet-roll
GATEWAY=""; DURATION=20; CONNECTIONS=16; CHANGES=10
while [ $# -gt 0 ]; do
    case "$1" in
        --gateway) GATEWAY=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --changes) CHANGES=$2; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "$BENCH: unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ -n "$GATEWAY" ] && [[ $GATEWAY != /* ]]; then GATEWAY=$PWD/$GATEWAY; fi
cd "$(dirname "$0")/../.."
. bench/lib/peers.sh
need_tools etcd:etcd-server etcdctl:etcd-client curl:curl python3:python3
GATEWAY=$(gateway_binary "$GATEWAY")
for v in "duration:$DURATION" "connections:$CONNECTIONS" "changes:$CHANGES"; do
    [[ ${v#*:} =~ ^[1-9][0-9]*$ ]] || die "--${v%%:*} must be a positive integer, got '${v#*:}'"
done

WORK=$(mktemp -d /tmp/fleet-roll.XXXXXX)
trap 'set +e; stop_started; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r ETCD_CLIENT ETCD_PEER G2 G2_ADMIN G3 G3_ADMIN A1 A2 < <(free_ports 8)
ETCD=127.0.0.1:$ETCD_CLIENT
PREFIX=/bench/
etcd --name b1 --data-dir "$WORK/etcd" --listen-client-urls "http://$ETCD" --advertise-client-urls "http://$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "b1=http://127.0.0.1:$ETCD_PEER" --log-level warn > "$WORK/etcd.log" 2>&1 &
remember $!
for _ in $(seq 1 100); do etcdctl --endpoints "$ETCD" put /ready 1 > /dev/null 2>&1 && break; sleep 0.1; done
etcdctl --endpoints "$ETCD" put /ready 1 > /dev/null || die "etcd did not start: $(tail -3 "$WORK/etcd.log")"

TOKEN=fleet-roll-bench-token
SHA=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
base=$((20000 + RANDOM % 20000))
start_gateway() { # NAME HOST PORT ADMIN PORTS
    cat > "$WORK/$1.yaml" <<CONF
listen: $2:$3
admin: {listen: $2:$4, users: [{name: bench, token_sha256: $SHA, level: admin}]}
shutdown_timeout: 10s
membership:
  etcd: {endpoints: [$ETCD], prefix: $PREFIX}
deployments:
  - name: shop
    hosts: [shop]
    process:
      command: [gateway, demo-backend]
      instances: 2
      ports: $5
      stop_timeout: 5s
      health: {http: /health, interval: 200ms, timeout: 500ms, failures: 2}
      ready_timeout: 15s
  - name: web
    hosts: [web]
    backends: []
CONF
    "$GATEWAY" run --config "$WORK/$1.yaml" --log-level warning > "$WORK/$1.log" 2>&1 &
    remember $!
}
start_gateway g2 127.0.0.2 "$G2" "$G2_ADMIN" "$base-$((base + 19))"
start_gateway g3 127.0.0.3 "$G3" "$G3_ADMIN" "$((base + 20))-$((base + 39))"
for a in "a1:$A1" "a2:$A2"; do
    "$GATEWAY" agent --etcd "$ETCD" --prefix "$PREFIX" --deployment web --address "127.0.0.1:${a#*:}" --health /health \
        --check-interval 0.2 -- "$GATEWAY" demo-backend --port "${a#*:}" --name "${a%%:*}" > "$WORK/${a%%:*}.log" 2>&1 &
    remember $!
done
ready() { # HOST PORT NAME: both web backends and shop answer
    local seen=""
    for _ in $(seq 1 8); do seen="$seen $(curl -s -H "Host: web" "http://$1:$2/" | cut -d' ' -f1)"; done
    [[ $seen == *a1* && $seen == *a2* ]] && [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop' "http://$1:$2/")" = 200 ]
}
for g in "127.0.0.2:$G2" "127.0.0.3:$G3"; do
    for _ in $(seq 1 300); do ready "${g%%:*}" "${g#*:}" && break; sleep 0.1; done
    ready "${g%%:*}" "${g#*:}" || die "gateway $g does not route to both agents and shop; logs in $WORK"
done

echo "$BENCH  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg); etcd $(etcd --version | head -1 | cut -d' ' -f3), 1 member"
echo "gateways: 127.0.0.2:$G2, 127.0.0.3:$G3 (shop: 2 supervised instances each; web: agents a1 127.0.0.1:$A1, a2 127.0.0.1:$A2)"

# Propagation: write a change (a member's value, same state) and time until both report it. The
# agent rewrites its value only when its state changes, so these writes change nothing else.
read -r prop_median prop_max < <(python3 bench/fleet_roll.py propagate --etcd "$ETCD" --prefix "$PREFIX" \
    --key "${PREFIX}deployments/web/backends/127.0.0.1:$A2" --value '{"state":"serving"}' --gateways 2 --count "$CHANGES")

python3 bench/fleet_roll.py load --targets "127.0.0.2:$G2,127.0.0.3:$G3" --hosts shop,web --duration "$DURATION" \
    --connections "$CONNECTIONS" --json "$WORK/load.json" &
LOAD=$!; remember $LOAD
sleep 2
roll_start=$(date +%s.%N)
GATEWAY_TOKEN=$TOKEN "$GATEWAY" restart shop --fleet --admin "http://127.0.0.2:$G2_ADMIN" > "$WORK/roll.out" 2>&1 && roll_status=0 || roll_status=$?
roll_s=$(python3 -c "import time; print(f'{time.time() - $roll_start:.2f}')")
drain_start=$(date +%s.%N)
python3 bench/fleet_roll.py left --etcd "$ETCD" --prefix "$PREFIX" --member "web/127.0.0.1:$A1" --since "$drain_start" > "$WORK/left.out" &
LEFT=$!; remember $LEFT
"$GATEWAY" agent drain --etcd "$ETCD" --prefix "$PREFIX" --deployment web --address "127.0.0.1:$A1" > "$WORK/drain.out" 2>&1 \
    && drain_status=0 || drain_status=$?
drain_s=$(python3 -c "import time; print(f'{time.time() - $drain_start:.2f}')")
wait "$LEFT" || true
wait "$LOAD" || true

read -r requests failed < <(python3 -c "import json; d = json.load(open('$WORK/load.json')); print(d['requests'], d['failed'])")
echo
echo "load: $CONNECTIONS connections for $DURATION s over both gateways and both deployments (GET /sleep?ms=20 and GET /)"
printf '  requests %s, failed %s\n' "$requests" "$failed"
[ "$failed" = 0 ] || python3 -c "import json; [print('   ', f) for f in json.load(open('$WORK/load.json'))['failures']]"
echo "fleet roll of shop (2 hosts, at most 1 at once): exit $roll_status after $roll_s s"
sed 's/^/    /' "$WORK/roll.out"
echo "agent drain of a1: exit $drain_status after $drain_s s (drain, every gateway let go, deregistered)"
read -r left_draining left_ask < "$WORK/left.out"
echo "  out of every gateway's rotation $left_draining s after its key said draining ($left_ask s after the drain was asked for)"
printf '  a1: %s\n' "$(grep -o 'every gateway let go.*' "$WORK/a1.log" | head -1 | cut -c1-120)"
echo "etcd change -> both gateways report it applied (s, $CHANGES changes): median $prop_median, max $prop_max"
