#!/usr/bin/env bash
# End-to-end tests in a real browser: builds the web app, starts `bloginfer up` on a free
# loopback port with a fresh data dir (it trains a first model there by a local federated
# run, about 60-90 s on 2 cores), and drives Debian's Chromium with playwright-core
# (web/e2e/). Screenshots and the server log go to ${E2E_ARTIFACTS:-var/e2e-artifacts}/.
#
#   BLOGINFER_BIN     the binary (default ${CARGO_TARGET_DIR:-target}/release/bloginfer);
#                     it is copied first, so a rebuild during the run does not swap it
#   E2E_ARTIFACTS     where screenshots and up.log go
#   E2E_SEED_MODELS   optional model registry to start from (skips the first training)
#   E2E_KEEP_DATA=1   keep the temporary data dir (its path is printed)
#
# The last line is `e2e: N passed, M failed, K skipped`; the exit status is non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

bin="${BLOGINFER_BIN:-${CARGO_TARGET_DIR:-target}/release/bloginfer}"
artifacts="${E2E_ARTIFACTS:-var/e2e-artifacts}"
mkdir -p "$artifacts"
artifacts="$(cd "$artifacts" && pwd)"
rm -f "$artifacts"/*.png "$artifacts"/up.log "$artifacts"/e2e.log

fail() {
    echo "e2e: $*" >&2
    echo "e2e: 0 passed, 1 failed"
    exit 1
}

[ -x "$bin" ] || fail "no bloginfer binary at $bin (cargo build --release, or set BLOGINFER_BIN)"

# The browser: Debian's Chromium, never a download of its own.
if [ ! -x /usr/bin/chromium ]; then
    echo "e2e: installing chromium (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || fail "cannot install chromium"
fi
# A small CJK font, so the screenshots show the Chinese comments rather than empty boxes
# (the assertions do not need it).
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1; } ||
        echo "e2e: no CJK font (fonts-wqy-microhei); Chinese text in screenshots shows as boxes" >&2
fi

# The web app and its test dependencies (playwright-core) from the lock file.
bash scripts/web-deps.sh || fail "cannot install the web app's packages"
(
    cd web
    npm run build --silent >"$artifacts/build.log" 2>&1 || { tail -n 30 "$artifacts/build.log" >&2; exit 1; }
) || fail "the web app did not build"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bloginfer-e2e.XXXXXX")"
data="$tmp/data"
mkdir -p "$data"
cp "$bin" "$tmp/bloginfer"
if [ -n "${E2E_SEED_MODELS:-}" ]; then
    cp -r "$E2E_SEED_MODELS" "$data/models"
fi
port="$(node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })')"
base="http://127.0.0.1:$port"

up_pid=""
cleanup() {
    status=$?
    if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
        # `up` leads its own process group: its federated workers go with it.
        kill -TERM -- "-$up_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$up_pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL -- "-$up_pid" 2>/dev/null || true
        wait "$up_pid" 2>/dev/null || true
    fi
    if [ "${E2E_KEEP_DATA:-0}" = 1 ]; then
        echo "e2e: data dir kept at $data" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "e2e: starting bloginfer up at $base (data dir $data)" >&2
setsid "$tmp/bloginfer" up --listen "127.0.0.1:$port" --data-dir "$data" --web-dir "$root/web/dist" \
    --workers 2 --rounds 10 >"$artifacts/up.log" 2>&1 &
up_pid=$!

ready() {
    node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$base/readyz"
}
deadline=$((SECONDS + ${E2E_READY_TIMEOUT:-900}))
until ready; do
    if ! kill -0 "$up_pid" 2>/dev/null; then
        tail -n 30 "$artifacts/up.log" >&2
        fail "bloginfer up exited before it was ready (log: $artifacts/up.log)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$artifacts/up.log" >&2; fail "bloginfer up not ready after ${E2E_READY_TIMEOUT:-900} s"; }
    sleep 1
done
echo "e2e: ready after ${SECONDS} s" >&2

log="$artifacts/e2e.log"
status=0
(
    cd web
    E2E_BASE_URL="$base" E2E_ARTIFACTS="$artifacts" E2E_DATA_DIR="$data" \
        E2E_FRESH_DATA="$([ -z "${E2E_SEED_MODELS:-}" ] && echo 1 || echo 0)" \
        node --test --test-concurrency=1 --test-reporter=spec e2e/blog.test.mjs e2e/dashboard.test.mjs
) 2>&1 | tee "$log" || status=$?

summary() { sed 's/\x1b\[[0-9;]*m//g' "$log" | awk -v key="$1" '$1 == "ℹ" && $2 == key { n = $3 } END { print n + 0 }'; }
passed="$(summary pass)"
failed=$(($(summary fail) + $(summary cancelled)))
skipped="$(summary skipped)"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "e2e: screenshots in $artifacts" >&2
echo "e2e: $passed passed, $failed failed, $skipped skipped"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
