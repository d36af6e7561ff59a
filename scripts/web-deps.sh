#!/usr/bin/env bash
# Installs the web app's packages from web/package-lock.json (npm registry only) when
# they are missing or older than the lock file. Used by run.sh, test.sh and e2e.sh.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: install Node.js 20 or newer" >&2
    exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
    [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
