#!/usr/bin/env bash
# A/B benchmark of two bloginfer binaries on the paths every request takes through the
# service chassis: the blog's article list (SQLite signed out with the page cache, signed
# in, and without the page cache; MariaDB without the page cache), one inference request,
# and the federated protocol's per-round overhead (`fl run`, fedsgd, where a round is
# almost all protocol). Runs alternate A, B, A, B, ... so drift on a shared VM hits both;
# prints the median of each and B/A. Writes bench/results/ab.json.
#
#   bash bench/ab.sh BIN_A BIN_B
#   BENCH_REPEATS=3  BENCH_DURATION=10s  BENCH_CONNECTIONS=32
set -euo pipefail
cd "$(dirname "$0")/.."
A="$(realpath "$1")"
B="$(realpath "$2")"
REPEATS="${BENCH_REPEATS:-3}"
DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
PORT=18282
URL="http://127.0.0.1:$PORT"

# Binaries before the chassis took --host/--port; after it, --listen.
listen() { # bin subcommand
    if "$1" "$2" --help | grep -q -- '--listen'; then echo "--listen 127.0.0.1:$PORT"; else echo "--host 127.0.0.1 --port $PORT"; fi
}

wait_for() { # url
    for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "nothing at $1" >&2; exit 1
}

rps() { # wrk args... -> req/s
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "$@" > "$WORK/wrk.txt"
    if grep -q "Non-2xx" "$WORK/wrk.txt"; then cat "$WORK/wrk.txt" >&2; echo "errors under load" >&2; exit 1; fi
    awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.txt"
}

api() { curl -sf -X "$1" "$URL$2" -H 'Content-Type: application/json' ${TOKEN:+-H "Authorization: Token $TOKEN"} ${3:+-d "$3"}; }

blog_case() { # bin database-url page-cache -> "signed_out signed_in"
    local bin="$1"
    # shellcheck disable=SC2046
    JWT_SECRET=benchmark-secret-benchmark-secret-00 "$bin" blog $(listen "$bin" blog) \
        --database-url "$2" --page-cache "$3" > "$WORK/blog.log" 2>&1 &
    local pid=$!
    wait_for "$URL/api/tags"
    TOKEN=""
    local user="u$RANDOM$RANDOM"
    TOKEN="$(api POST /api/users "{\"user\":{\"username\":\"$user\",\"email\":\"$user@x.test\",\"password\":\"password-123\"}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["token"])')"
    local have; have="$(api GET '/api/articles?limit=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)["articlesCount"])')"
    for i in $(seq "$have" 49); do
        api POST /api/articles "{\"article\":{\"title\":\"Post $i\",\"description\":\"d\",\"body\":\"正文 $i\",\"tagList\":[\"t$(( i % 7 ))\"]}}" >/dev/null
    done
    local out signed_in
    out="$(rps "$URL/api/articles?limit=20")"
    printf 'wrk.headers["Authorization"] = "Token %s"\n' "$TOKEN" > "$WORK/auth.lua"
    signed_in="$(rps -s "$WORK/auth.lua" "$URL/api/articles?limit=20")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$out $signed_in"
}

infer_case() { # bin models -> req/s
    local bin="$1"
    # shellcheck disable=SC2046
    "$bin" --models-dir "$2" infer $(listen "$bin" infer) > "$WORK/infer.log" 2>&1 &
    local pid=$!
    wait_for "$URL/readyz"
    cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "这家酒店位置很好，离地铁站步行五分钟，房间干净整洁，服务员态度热情周到，早餐种类也很丰富。"}'
LUA
    local out; out="$(rps -s "$WORK/post.lua" "$URL/v1/sentiment")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$out"
}

fl_case() { # bin -> mean protocol overhead per round, seconds
    local bin="$1" dir="$WORK/fl-$RANDOM"
    "$bin" --models-dir "$dir/models" fl run --workers 2 --rounds 10 --strategy fedsgd \
        --work-dir "$dir/run" --no-promote > /dev/null 2>&1
    python3 - "$dir/run/result.json" <<'PY'
import json, sys
rounds = [r for r in json.load(open(sys.argv[1]))["history"] if r["round"] > 0]
print(sum(r["seconds"] - r["slowest_train_seconds"] - r["eval_seconds"] for r in rounds) / len(rounds))
PY
    rm -rf "$dir"
}

MODELS="$WORK/models"
"$B" --models-dir "$MODELS" train --epochs 1 > /dev/null 2>&1
mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS bloginfer_ab; CREATE DATABASE bloginfer_ab" 2>/dev/null

results="$WORK/results.txt"
for i in $(seq 1 "$REPEATS"); do
    for side in A B; do
        bin="$A"; [ "$side" = B ] && bin="$B"
        rm -f "$WORK"/blog*.db*
        read -r out in_ <<< "$(blog_case "$bin" "sqlite:$WORK/blog-$side.db" true)"
        read -r nocache _ <<< "$(blog_case "$bin" "sqlite:$WORK/blog-$side.db" false)"
        mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS bloginfer_ab; CREATE DATABASE bloginfer_ab"
        read -r mnocache _ <<< "$(blog_case "$bin" "mysql://root@127.0.0.1:3306/bloginfer_ab" false)"
        inf="$(infer_case "$bin" "$MODELS")"
        fl="$(fl_case "$bin")"
        echo "$side $out $in_ $nocache $mnocache $inf $fl" | tee -a "$results" >&2
    done
done
mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS bloginfer_ab" 2>/dev/null || true

python3 - "$results" <<'PY'
import json, statistics, sys
names = ["blog_sqlite_signed_out_rps", "blog_sqlite_signed_in_rps", "blog_sqlite_no_cache_rps",
         "blog_mariadb_no_cache_rps", "infer_rps", "fl_round_overhead_s"]
rows = [l.split() for l in open(sys.argv[1])]
med = {side: [statistics.median(float(r[1 + k]) for r in rows if r[0] == side) for k in range(len(names))] for side in "AB"}
out = {n: {"A": med["A"][k], "B": med["B"][k], "B/A": med["B"][k] / med["A"][k]} for k, n in enumerate(names)}
print(f"{'case':32} {'A':>10} {'B':>10} {'B/A':>6}")
for n, v in out.items():
    print(f"{n:32} {v['A']:10.3f} {v['B']:10.3f} {v['B/A']:6.3f}")
json.dump(out, open("bench/results/ab.json", "w"), indent=2)
PY
