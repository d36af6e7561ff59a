#!/usr/bin/env bash
# Blog API benchmark: `bloginfer blog` on SQLite and on MariaDB (127.0.0.1:3306, root),
# wrk with 32 connections: GET /api/articles?limit=20 with 50 and with 1,000 articles,
# signed out with the page cache (the default), signed in (the cached page plus the
# viewer's favourites and follows from the database), signed out without the cache
# (every request reads the database: count, page, authors), and POST a comment. Prints req/s and p99 per case; writes
# bench/results/blog.json.
#   BENCH_DURATION=20s  BENCH_CONNECTIONS=32
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${BENCH_DURATION:-20s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
cargo build --release --locked -p bloginfer-cli
BIN="${CARGO_TARGET_DIR:-target}/release/bloginfer"
PORT=18181
URL="http://127.0.0.1:$PORT"

api() { curl -sf -X "$1" "$URL$2" -H 'Content-Type: application/json' ${TOKEN:+-H "Authorization: Token $TOKEN"} ${3:+-d "$3"}; }

seed_to() { # creates articles until there are $1
    local have; have="$(api GET '/api/articles?limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["articlesCount"])')"
    for i in $(seq "$have" $(( $1 - 1 ))); do
        api POST /api/articles "{\"article\":{\"title\":\"Post $i\",\"description\":\"简介 $i\",\"body\":\"正文内容 $i\",\"tagList\":[\"t$(( i % 7 ))\"]}}" >/dev/null
    done
}

run_wrk() { # script url -> "req/s p99_ms"
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency ${1:+-s "$1"} "$2" > "$WORK/wrk.txt"
    python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
v, u = float(m.group(1)), m.group(2)
p99 = v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
print(rps, p99, int(bad.group(1)) if bad else 0)
PY
}

results="$WORK/results.txt"
start_blog() { # database-url page-cache(true|false)
    if curl -s -o /dev/null "$URL/healthz"; then
        echo "port $PORT is taken by another process; stop it first" >&2
        exit 1
    fi
    JWT_SECRET=benchmark-secret-benchmark-secret-00 "$BIN" blog --listen 127.0.0.1:$PORT --database-url "$1" --page-cache "$2" > "$WORK/blog.log" 2>&1 &
    BLOG_PID=$!
    for _ in $(seq 1 100); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.1; done
    # Sessions live in the process: sign up (first start) or in again.
    TOKEN="$(api POST /api/users "$BENCH_USER" || api POST /api/users/login "$BENCH_USER")"
    TOKEN="$(echo "$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["token"])')"
    export TOKEN
}

BENCH_USER='{"user":{"username":"bench","email":"bench@example.com","password":"benchmark-password"}}'

stop_blog() { kill "$BLOG_PID"; wait "$BLOG_PID" 2>/dev/null || true; }

signed_in_script() { # the list as the signed-in bench user
    cat > "$WORK/signed_in.lua" <<LUA
wrk.headers["Authorization"] = "Token $TOKEN"
LUA
    echo "$WORK/signed_in.lua"
}

list_cases() { # backend size
    local list="$URL/api/articles?limit=20"
    echo "$1 list$2 $(run_wrk '' "$list")" >> "$results"
    echo "$1 list$2-signed-in $(run_wrk "$(signed_in_script)" "$list")" >> "$results"
    stop_blog; start_blog "$DB_URL" false
    echo "$1 list$2-uncached $(run_wrk '' "$list")" >> "$results"
    stop_blog; start_blog "$DB_URL" true
}

bench_backend() { # name database-url
    DB_URL="$2"
    start_blog "$DB_URL" true
    seed_to 50
    list_cases "$1" 50
    seed_to 1000
    list_cases "$1" 1000
    local slug; slug="$(api GET '/api/articles?limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["articles"][0]["slug"])')"
    cat > "$WORK/comment.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token $TOKEN"
wrk.body = '{"comment": {"body": "这篇文章写得很好，受益匪浅"}}'
LUA
    echo "$1 comment $(run_wrk "$WORK/comment.lua" "$URL/api/articles/$slug/comments")" >> "$results"
    stop_blog
    unset TOKEN
}

bench_backend sqlite "sqlite://$WORK/blog.db"
mysql -uroot -e "DROP DATABASE IF EXISTS bloginfer_bench; CREATE DATABASE bloginfer_bench CHARACTER SET utf8mb4"
bench_backend mariadb "mysql://root@127.0.0.1:3306/bloginfer_bench"
mysql -uroot -e "DROP DATABASE IF EXISTS bloginfer_bench"

mkdir -p bench/results
python3 - "$results" "$CONNECTIONS" "$DURATION" <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
out = [{"backend": b, "case": c, "req_per_s": float(r), "p99_ms": float(p), "non_2xx": int(e)} for b, c, r, p, e in rows]
json.dump({"connections": int(sys.argv[2]), "duration": sys.argv[3], "runs": out}, open("bench/results/blog.json", "w"), indent=2)
print("| backend | case | req/s | p99 ms | non-2xx |")
print("|---|---|---|---|---|")
for r in out:
    print(f"| {r['backend']} | {r['case']} | {r['req_per_s']:.0f} | {r['p99_ms']:.2f} | {r['non_2xx']} |")
PY
