#!/usr/bin/env bash
# Runs the gateway on the bundled example: installs what a fresh Debian machine lacks, builds,
# and starts the gateway on 8080 (admin on 9901). The gateway itself starts the three demo
# backend instances of examples/gateway.yaml, health-checks them and puts them in rotation.
# Ctrl-C (or SIGTERM) drains the gateway, stops the instances and exits.
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

echo "gateway on http://127.0.0.1:8080 (admin http://127.0.0.1:9901); in another shell:"
echo "  $BIN status            # the process table"
echo "  $BIN restart shop      # a rolling restart"
echo "Ctrl-C to stop"
exec "$BIN" run --config examples/gateway.yaml
