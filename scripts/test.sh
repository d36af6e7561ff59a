#!/usr/bin/env bash
# Runs the whole test suite. Everything it needs is checked or installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust first" >&2
    exit 1
fi

# One profile for tests and binaries (release: the numeric code is too slow
# unoptimised), so a cold build compiles the dependency tree once.
cargo fmt --all -- --check
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --release --locked --lib --bins --tests 2>&1 | tee "$log" || status=$?
# One closing line over all test binaries (cargo prints one per binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' \
    "$log" | sed 's/;//g'
exit "$status"
