#!/usr/bin/env bash
# Runs the whole test suite: the Kubernetes manifests, the Rust tests (with MariaDB and
# Redis on loopback), the web app's unit tests and the end-to-end browser tests.
# Everything it needs is checked or installed here.
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
manifests="$(mktemp -d)"
trap 'rm -rf "$log" "$manifests"' EXIT
status=0

# The Kubernetes manifests: rendered per overlay and validated against the
# Kubernetes 1.33 schemas here; the Rust test crates/cli/tests/manifests.rs
# then checks the rendered objects' invariants.
bash scripts/check-manifests.sh "$manifests" 2>&1 | tee -a "$log" || status=$?
export BLOGINFER_MANIFESTS_DIR="$manifests"

# The static gate: the workspace's [lints] table (no unwrap in services, casts that
# say what they do) and every clippy warning, as errors.
cargo clippy --workspace --all-targets --release --locked -- -D warnings 2>&1 | tee -a "$log" || status=$?

cargo test --workspace --release --locked --lib --bins --tests 2>&1 | tee -a "$log" || status=$?

# The web app's unit tests (vitest), from the lock file.
bash scripts/web-deps.sh
(cd web && npx vitest run --reporter=default 2>&1) | tee -a "$log" || status=$?

# End to end in a real browser: Debian's chromium (installed here when missing) driven
# by playwright-core against `bloginfer up` with a fresh data dir; screenshots go to
# var/e2e-artifacts/.
BLOGINFER_BIN="${CARGO_TARGET_DIR:-target}/release/bloginfer" bash scripts/e2e.sh 2>&1 | tee -a "$log" || status=$?

# One closing line over all test binaries (cargo prints one per binary, vitest one in all).
sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
    /^test result:/ { p += $4; f += $6 }
    /^manifests:/ { p += $2; f += $4 }
    /^e2e: [0-9]+ passed/ { p += $2; f += $4 }
    /^ *Tests +[0-9]/ { for (i = 2; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
    END { printf "tests: %d passed, %d failed\n", p, f }' | sed 's/;//g'
exit "$status"
