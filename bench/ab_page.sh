#!/usr/bin/env bash
# The blog's article list in one quick A/B: two bloginfer binaries, alternating, on
# `GET /api/articles?limit=20` over SQLite with the page cache, signed out and signed in.
# The page is cheap, so a per-request cost of the service chassis shows most here.
# Prints one line per run; compare medians of alternating runs only (the VM drifts).
#
#   bash bench/ab_page.sh BIN_A BIN_B      BENCH_REPEATS=3  BENCH_DURATION=8s
set -euo pipefail
A="$(realpath "$1")"
B="$(realpath "$2")"
REPEATS="${BENCH_REPEATS:-3}"
DURATION="${BENCH_DURATION:-8s}"
PORT=18383
URL="http://127.0.0.1:$PORT"
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

api() { curl -sf -X "$1" "$URL$2" -H 'Content-Type: application/json' ${TOKEN:+-H "Authorization: Token $TOKEN"} ${3:+-d "$3"}; }

run() { # label bin
    local bin="$2" listen
    # Binaries before the chassis took --host/--port; after it, --listen.
    if "$bin" blog --help | grep -q -- --listen; then listen="--listen 127.0.0.1:$PORT"; else listen="--host 127.0.0.1 --port $PORT"; fi
    rm -f "$WORK"/blog.db*
    # shellcheck disable=SC2086
    JWT_SECRET=benchmark-secret-benchmark-secret-00 "$bin" blog $listen \
        --database-url "sqlite:$WORK/blog.db" --page-cache true > "$WORK/blog.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do curl -sf -o /dev/null "$URL/api/tags" && break; sleep 0.1; done
    TOKEN=""
    TOKEN="$(api POST /api/users '{"user":{"username":"bench","email":"bench@x.test","password":"password-123"}}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["token"])')"
    for i in $(seq 1 50); do
        api POST /api/articles "{\"article\":{\"title\":\"Post $i\",\"description\":\"d\",\"body\":\"正文 $i\",\"tagList\":[\"t$(( i % 7 ))\"]}}" >/dev/null
    done
    printf 'wrk.headers["Authorization"] = "Token %s"\n' "$TOKEN" > "$WORK/auth.lua"
    local out in_
    out="$(wrk -t2 -c32 -d"$DURATION" "$URL/api/articles?limit=20" | awk '/Requests\/sec/ { print $2 }')"
    in_="$(wrk -t2 -c32 -d"$DURATION" -s "$WORK/auth.lua" "$URL/api/articles?limit=20" | awk '/Requests\/sec/ { print $2 }')"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$1 signed_out=$out signed_in=$in_"
}

for _ in $(seq 1 "$REPEATS"); do
    run A "$A"
    run B "$B"
done
