#!/usr/bin/env bash
# Builds bloginfer and runs it: trains a model by a local federated run on the
# bundled corpus (an aggregator and two worker processes on loopback; skipped when
# the registry already has a current model) and shows its evaluation on the
# fixed validation split. Extra arguments go to `bloginfer fl run`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust from your package manager or rustup first" >&2
    exit 1
fi

cargo build --release --locked -p bloginfer-cli
bin="${CARGO_TARGET_DIR:-target}/release/bloginfer"
export MODEL_DIR="${MODEL_DIR:-./var/models}"

if [ -z "$("$bin" models list --json | grep -o '"current": true' || true)" ] || [ "$#" -gt 0 ]; then
    "$bin" fl run "$@"
fi
"$bin" eval
"$bin" predict "这家酒店干净整洁，服务也很热情，下次还会再来" "质量太差了，用了两天就坏了，非常失望"
