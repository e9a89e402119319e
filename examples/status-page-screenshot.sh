#!/usr/bin/env bash
# A PNG of the live status page, taken by headless Chromium (Debian's `chromium`, or $CHROMIUM)
# through the tests' browser driver, so a person can look at the page without a desktop.
#
#   GATEWAY_TOKEN=... examples/status-page-screenshot.sh [OUT.png]     (default bench/out/status-page.png)
#
# If a gateway answers on $GATEWAY_ADMIN (default http://127.0.0.1:9901), the page is taken from
# it, signed in with $GATEWAY_TOKEN (a token of one of its admin.users). Otherwise this starts the
# bundled example (examples/gateway.yaml: deployment "shop", three demo-backend instances) with one
# extra viewer whose token is $GATEWAY_TOKEN (made up when unset), sends a few slow requests so
# there is something in flight, takes the picture and stops the gateway again.
set -euo pipefail
cd "$(dirname "$0")/.."

ADMIN=${GATEWAY_ADMIN:-http://127.0.0.1:9901}
OUT=${1:-bench/out/status-page.png}
DRIVER=Tests/GatewayTests/Fixtures/browser.py
mkdir -p "$(dirname "$OUT")"
command -v "${CHROMIUM:-chromium}" >/dev/null || { echo "needs chromium (apt-get install chromium) or \$CHROMIUM" >&2; exit 1; }

workdir=$(mktemp -d)
gateway_pid=""
cleanup() {
    if [ -n "$gateway_pid" ]; then
        kill -TERM "$gateway_pid" 2>/dev/null || true   # drains, stops the instances, exits
        wait "$gateway_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

if curl -fs -o /dev/null --max-time 2 "$ADMIN/health"; then
    [ -n "${GATEWAY_TOKEN:-}" ] || { echo "a gateway runs on $ADMIN: set GATEWAY_TOKEN to one of its admin tokens" >&2; exit 1; }
    TOKEN=$GATEWAY_TOKEN
    echo "using the gateway on $ADMIN"
else
    TOKEN=${GATEWAY_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_hex(24))')}
    DIGEST=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())' "$TOKEN")
    if [ -n "${GATEWAY_BINARY:-}" ]; then
        BIN=$GATEWAY_BINARY
    else
        swift build --product gateway
        BIN=$(swift build --show-bin-path)/gateway
    fi
    # The example's TLS listener needs the certificate run-demo.sh makes; make it the same way.
    if [ ! -f examples/certs/localhost.pem ]; then
        mkdir -p examples/certs
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
            -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout examples/certs/localhost.key -out examples/certs/localhost.pem 2>/dev/null
    fi
    # The example as it is, with its certificate paths made absolute (the copy lives elsewhere)
    # and a viewer for this token added to admin.users (created when the example has none).
    python3 - examples/gateway.yaml "$workdir/gateway.yaml" "$PWD/examples/" "$DIGEST" <<'EOF'
import sys
source, target, examples, digest = sys.argv[1:]
user = "    - {name: screenshot, token_sha256: %s, level: viewer}\n" % digest
lines = open(source).read().replace("certs/", examples + "certs/").splitlines(keepends=True)
start = next(i for i, line in enumerate(lines) if line.startswith("admin:"))
end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() and not lines[i].startswith((" ", "#"))), len(lines))
users = next((i for i in range(start + 1, end) if lines[i].startswith("  users:")), None)
if users is not None:
    lines.insert(users + 1, user)
else:
    lines.insert(start + 1, "  users:\n" + user)
open(target, "w").write("".join(lines))
EOF
    "$BIN" run --config "$workdir/gateway.yaml" >"$workdir/gateway.log" 2>&1 &
    gateway_pid=$!
    echo "started the example gateway (pid $gateway_pid, log in $workdir/gateway.log while it runs)"
    for _ in $(seq 150); do
        curl -fs -o /dev/null --max-time 1 "$ADMIN/health" && break
        kill -0 "$gateway_pid" 2>/dev/null || { cat "$workdir/gateway.log" >&2; exit 1; }
        sleep 0.2
    done
    # Until the three instances are READY (bounded), then a few slow requests to see in flight.
    for _ in $(seq 150); do
        ready=$(curl -fs --max-time 1 -H "Authorization: Bearer $TOKEN" "$ADMIN/processes" | grep -o '"state" *: *"READY"' | wc -l || true)
        [ "${ready:-0}" -ge 3 ] && break
        sleep 0.2
    done
    for _ in 1 2 3 4; do curl -s -o /dev/null --max-time 20 "http://127.0.0.1:8080/sleep?ms=6000" & done
fi

python3 - "$DRIVER" "$ADMIN" "$TOKEN" "$OUT" <<'EOF'
import json, subprocess, sys, time
driver, admin, token, out = sys.argv[1:]
browser = subprocess.Popen([sys.executable, driver], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

def call(**command):
    browser.stdin.write(json.dumps(command) + "\n")
    browser.stdin.flush()
    answer = json.loads(browser.stdout.readline() or '{"ok": false, "error": "the driver exited"}')
    if not answer.get("ok"):
        raise RuntimeError("%s: %s" % (command.get("cmd"), answer.get("error")))
    return answer.get("value")

def wait_for(what, expression, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if call(cmd="eval", expr=expression):
                return
        except RuntimeError:
            pass  # still navigating
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)

try:
    ready = json.loads(browser.stdout.readline() or '{"ok": false, "error": "the driver exited"}')
    if not ready.get("ok"):
        raise RuntimeError(ready.get("error"))
    call(cmd="goto", url=admin + "/")
    wait_for("the sign-in form", "!!document.getElementById('token')")
    try:
        call(cmd="eval", expr="document.getElementById('token').value = %s; document.getElementById('sign-in').click()" % json.dumps(token))
    except RuntimeError:
        pass  # the submit navigated away while the evaluation ran
    wait_for("the live page (is the token right?)", "document.querySelector('#connection')?.textContent === 'live'")
    # Two state messages give the request rates; then the page is as a person would see it.
    wait_for("request rates", "[...document.querySelectorAll('[data-deployment] [data-field=\"rate\"]')].some(e => e.textContent !== '–')", 15)
    print("wrote %s (%d bytes)" % (out, call(cmd="screenshot", path=out)["bytes"]))
    call(cmd="quit")
finally:
    browser.stdin.close()
    browser.wait(timeout=30)
EOF
