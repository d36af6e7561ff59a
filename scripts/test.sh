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
cargo test --workspace --release --locked
