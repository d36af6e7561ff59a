#!/usr/bin/env bash
# Builds the web app and bloginfer, then runs the whole system in one process:
# `bloginfer up` serves the blog, inference, the training orchestrator, the labeler
# and the web app at http://127.0.0.1:8080, with SQLite and models under ./var. On the
# first start it trains a model by a local federated run over the bundled corpus (an
# aggregator and two worker processes on loopback, about 2-3 minutes on 2 cores) and
# prints a generated admin login. Extra arguments go to `bloginfer up` (for example
# --listen 0.0.0.0:8080, --data-dir DIR, --rounds 5); LLM_BASE_URL and LLM_MODEL turn
# on LLM labelling of new comments (docs/feedback.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust from your package manager or rustup first" >&2
    exit 1
fi
bash scripts/web-deps.sh
(cd web && npm run build --silent)
cargo build --release --locked -p bloginfer-cli
exec "${CARGO_TARGET_DIR:-target}/release/bloginfer" up --web-dir web/dist "$@"
