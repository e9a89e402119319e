#!/usr/bin/env bash
# Fuzzes the HTTP/1.x head and chunked-body scanners against NIO's parser (llhttp) with libFuzzer
# (the Swift toolchain's clang runtime): any input whose first request or response the scanners
# accept and llhttp reads otherwise aborts, and libFuzzer keeps it as crash-*.
# Usage: Fuzz/run-head-scanner.sh [SECONDS] [extra libFuzzer flags...] (default 300 seconds).
# Replay a saved input with an ordinary build: swift run HeadScannerFuzz crash-...
# Linked with lld: gold fails on the sanitizer build (an internal error in its DWARF reader).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
swift build -c release --product HeadScannerFuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library -Xswiftc -DFUZZING -Xswiftc -use-ld=lld
work=$(mktemp -d)
cp Fuzz/corpus/request-framing/* "$work/"
cp Fuzz/HeadScannerFuzz/corpus/* "$work/"
cd "$work"
# Swift's backtracer would take the abort before libFuzzer's handler, which saves the input.
SWIFT_BACKTRACE=enable=no "$OLDPWD/.build-fuzz/release/HeadScannerFuzz" -max_total_time="$seconds" -max_len=4096 \
    -dict="$OLDPWD/Fuzz/HeadScannerFuzz/head-scanner.dict" -print_final_stats=1 "$@" "$work"
