#!/usr/bin/env bash
# Instructions per request of the blog's article list and of a comment post, for two
# bloginfer binaries: each runs under `valgrind --tool=callgrind`, is set up (a user, 50
# articles), has its counters zeroed, then answers N sequential keep-alive requests of
# `GET /api/articles?limit=20` signed out, N signed in, and N/10 signed-in
# `POST /api/articles/:slug/comments`; the counters are dumped after each phase. Instruction counts do not depend on what else the VM is doing, so this
# settles differences that wall-clock A/B runs cannot (their noise is ±25% here).
#
#   bash bench/callgrind_page.sh BIN_A BIN_B      BENCH_REQUESTS=2000
set -euo pipefail
A="$(realpath "$1")"
B="$(realpath "$2")"
N="${BENCH_REQUESTS:-2000}"
PORT=18384
URL="http://127.0.0.1:$PORT"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

api() { curl -sf -X "$1" "$URL$2" -H 'Content-Type: application/json' ${TOKEN:+-H "Authorization: Token $TOKEN"} ${3:+-d "$3"}; }

# Keep-alive requests on one connection: `hammer COUNT TOKEN [SLUG]`; with a slug, comment
# posts on that article, else GETs of the list.
hammer() {
    python3 - "$PORT" "$1" "$2" "${3:-}" <<'EOF'
import http.client, json, sys
port, n, token, slug = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"} if token else {}
conn = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    if slug:
        body = json.dumps({"comment": {"body": f"这部电影很好看 {i}"}})
        conn.request("POST", f"/api/articles/{slug}/comments", body=body, headers=headers)
    else:
        conn.request("GET", "/api/articles?limit=20", headers=headers)
    r = conn.getresponse()
    r.read()
    assert r.status in (200, 201), r.status
EOF
}

# Total instructions (Ir) in the newest dump of the callgrind output `$1`.
instructions() {
    local latest
    latest="$(ls -t "$1".* | head -1)"
    awk '/^summary:/ { print $2 }' "$latest"
}

run() { # label bin
    local bin="$2" listen pid
    if "$bin" blog --help | grep -q -- --listen; then listen="--listen 127.0.0.1:$PORT"; else listen="--host 127.0.0.1 --port $PORT"; fi
    rm -rf "$WORK/db" "$WORK"/cg.*; mkdir -p "$WORK/db"
    # shellcheck disable=SC2086
    JWT_SECRET=benchmark-secret-benchmark-secret-00 valgrind --tool=callgrind \
        --callgrind-out-file="$WORK/cg.%p" "$bin" blog $listen \
        --database-url "sqlite:$WORK/db/blog.db" --page-cache true > "$WORK/blog.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do curl -sf -o /dev/null "$URL/api/tags" && break; sleep 0.2; done
    TOKEN=""
    TOKEN="$(api POST /api/users '{"user":{"username":"bench","email":"bench@x.test","password":"password-123"}}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["token"])')"
    for i in $(seq 1 50); do
        api POST /api/articles "{\"article\":{\"title\":\"Post $i\",\"description\":\"d\",\"body\":\"正文 $i\",\"tagList\":[\"t$(( i % 7 ))\"]}}" >/dev/null
    done
    local slug posts=$(( N / 10 ))
    slug="$(api GET '/api/articles?limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["articles"][0]["slug"])')"
    # Warm: page cache filled, pools grown, the first comments written.
    hammer "$N" "" && hammer "$N" "$TOKEN" && hammer 50 "$TOKEN" "$slug"
    callgrind_control -z "$pid" >/dev/null 2>&1
    hammer "$N" ""
    callgrind_control -d "$pid" >/dev/null 2>&1
    local out in_ post
    out="$(instructions "$WORK/cg")"
    callgrind_control -z "$pid" >/dev/null 2>&1
    hammer "$N" "$TOKEN"
    callgrind_control -d "$pid" >/dev/null 2>&1
    in_="$(instructions "$WORK/cg")"
    callgrind_control -z "$pid" >/dev/null 2>&1
    hammer "$posts" "$TOKEN" "$slug"
    callgrind_control -d "$pid" >/dev/null 2>&1
    post="$(instructions "$WORK/cg")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$1 signed_out=$(( out / N )) signed_in=$(( in_ / N )) comment_post=$(( post / posts )) (instructions per request)"
}

run A "$A"
run B "$B"
