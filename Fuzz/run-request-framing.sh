#!/usr/bin/env bash
# Fuzzes the request framing with libFuzzer (the Swift toolchain's clang runtime): any input for
# which the backend parses something other than what the gateway parsed aborts, and libFuzzer
# keeps the input as crash-*. Usage: Fuzz/run-request-framing.sh [SECONDS] (default 300).
# Replay a saved input with an ordinary build: swift run RequestFramingFuzz crash-...
# Linked with lld: gold fails on the sanitizer build (an internal error in its DWARF reader).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
swift build -c release --product RequestFramingFuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -DFUZZING -Xswiftc -use-ld=lld
work=$(mktemp -d)
cp Fuzz/corpus/request-framing/* "$work/"
cd "$work"
SWIFT_BACKTRACE=enable=no "$OLDPWD/.build-fuzz/release/RequestFramingFuzz" -max_total_time="$seconds" -max_len=4096 \
    -dict="$OLDPWD/Fuzz/request-framing.dict" -print_final_stats=1 "$work"
