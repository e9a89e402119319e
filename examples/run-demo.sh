#!/usr/bin/env bash
# Runs the gateway on the bundled example: installs what a fresh Debian machine lacks, builds,
# starts two demo backends on 9001 and 9002 and the gateway on 8080 (admin on 9901).
# Ctrl-C (or SIGTERM to this script) drains the gateway first, then stops the backends.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libnghttp2-dev libssl-dev pkg-config curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

swift build -c release --product gateway
BIN=$(swift build -c release --show-bin-path)/gateway

# Each child in its own session: Ctrl-C reaches only this script, which stops them in order.
setsid "$BIN" demo-backend --port 9001 --name shop-1 & B1=$!
setsid "$BIN" demo-backend --port 9002 --name shop-2 & B2=$!
setsid "$BIN" run --config examples/gateway.yaml & GATEWAY=$!

stop() {
    trap - EXIT INT TERM
    kill -TERM "$GATEWAY" 2>/dev/null || true
    wait "$GATEWAY" 2>/dev/null || true
    kill -TERM "$B1" "$B2" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM
echo "gateway on http://127.0.0.1:8080 (admin http://127.0.0.1:9901/stats); Ctrl-C to stop"
wait "$GATEWAY"
