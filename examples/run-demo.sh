#!/usr/bin/env bash
# Runs the gateway on the bundled example: installs what a fresh Debian machine lacks, builds,
# makes a self-signed certificate for the TLS listener (once), and starts the gateway on 8080
# (HTTP/1.1 and h2c) and 8443 (TLS: h2 and HTTP/1.1), admin on 9901. The gateway itself starts the three demo
# backend instances of examples/gateway.yaml, health-checks them and puts them in rotation.
# Ctrl-C (or SIGTERM) drains the gateway, stops the instances and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libnghttp2-dev libssl-dev pkg-config curl openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -f examples/certs/localhost.pem ]; then
    mkdir -p examples/certs
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout examples/certs/localhost.key -out examples/certs/localhost.pem 2>/dev/null
fi

swift build -c release --product gateway
BIN=$(swift build -c release --show-bin-path)/gateway

echo "gateway on http://127.0.0.1:8080 and https://127.0.0.1:8443 (admin http://127.0.0.1:9901); in another shell:"
echo "  curl -k --http2 https://127.0.0.1:8443/   # h2 over TLS"
echo "  curl --http2-prior-knowledge http://127.0.0.1:8080/   # h2c"
echo "  $BIN status --config examples/gateway.yaml        # the process table (over the admin socket)"
echo "  $BIN restart shop --config examples/gateway.yaml  # a rolling restart"
echo "  $BIN events --config examples/gateway.yaml        # what happens, live"
echo "Ctrl-C to stop"
exec "$BIN" run --config examples/gateway.yaml
