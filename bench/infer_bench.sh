#!/usr/bin/env bash
# Inference benchmark: one `bloginfer infer` process on this machine against the
# reference FastAPI + PyTorch service (bench/serve/ref_service.py, same architecture
# and weights), each loaded by wrk with 32 connections for 20 s, one ~60-character
# review per request. Reports req/s, p50, p99 and peak RSS; writes
# bench/results/infer.json. Run it on an idle machine.
#
#   BENCH_DURATION=20s  BENCH_CONNECTIONS=32  BENCH_VENV=target/bench-venv
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${BENCH_DURATION:-20s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
VENV="${BENCH_VENV:-target/bench-venv}"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null || { echo "install wrk first" >&2; exit 1; }; }
bash bench/pytorch/setup.sh >/dev/null
"$VENV/bin/python" -m pip install -q -r bench/serve/requirements.txt

cargo build --release --locked -p bloginfer-cli
BIN="${CARGO_TARGET_DIR:-target}/release/bloginfer"
MODELS="${BENCH_MODELS:-target/bench-models}"
if [ ! -f "$MODELS/current" ]; then
    "$BIN" --models-dir "$MODELS" train --epochs 2 >/dev/null
fi
VERSION="$(cat "$MODELS/current")"
CHECKPOINT="$MODELS/versions/$VERSION.safetensors"

TEXT="这家酒店位置很好，离地铁站步行五分钟，房间干净整洁，服务员态度热情周到，早餐种类也很丰富，下次出差还会选择这里。"
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "$TEXT"}'
LUA

wait_up() {
    for _ in $(seq 1 300); do
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"text":"好"}' "$1/v1/sentiment" && return 0
        sleep 0.1
    done
    echo "service at $1 did not come up" >&2; exit 1
}

# Runs wrk against $1 and prints: req/s p50_ms p99_ms errors
load() {
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/post.lua" "$1/v1/sentiment" > "$WORK/wrk.txt"
    python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(tag):
    m = re.search(rf"^\s*{tag}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
print(rps, ms("50"), ms("99"), int(errors.group(1)) if errors else 0)
PY
}

peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

"$BIN" --models-dir "$MODELS" infer --listen 127.0.0.1:18080 > "$WORK/infer.log" 2>&1 &
OURS=$!
wait_up http://127.0.0.1:18080
read -r ours_rps ours_p50 ours_p99 ours_err < <(load http://127.0.0.1:18080)
ours_rss="$(peak_rss_mib $OURS)"
kill $OURS; wait $OURS 2>/dev/null || true

(cd bench/serve && CHECKPOINT="$OLDPWD/$CHECKPOINT" exec "$OLDPWD/$VENV/bin/python" -m uvicorn ref_service:app \
    --host 127.0.0.1 --port 18081 --log-level warning) > "$WORK/ref.log" 2>&1 &
REF=$!
wait_up http://127.0.0.1:18081
read -r ref_rps ref_p50 ref_p99 ref_err < <(load http://127.0.0.1:18081)
ref_rss="$(peak_rss_mib $REF)"
kill $REF; wait $REF 2>/dev/null || true

mkdir -p bench/results
python3 - "$ours_rps" "$ours_p50" "$ours_p99" "$ours_err" "$ours_rss" "$ref_rps" "$ref_p50" "$ref_p99" "$ref_err" "$ref_rss" "$CONNECTIONS" "$DURATION" "$VERSION" <<'PY'
import json, os, sys
a = sys.argv[1:]
row = lambda o: {"req_per_s": float(a[o]), "p50_ms": float(a[o+1]), "p99_ms": float(a[o+2]), "errors": int(a[o+3]), "peak_rss_mib": float(a[o+4])}
result = {"connections": int(a[10]), "duration": a[11], "model_version": a[12], "cpus": os.cpu_count(),
          "bloginfer_infer": row(0), "fastapi_pytorch": row(5)}
ours, ref = result["bloginfer_infer"], result["fastapi_pytorch"]
result["throughput_ratio"] = round(ours["req_per_s"] / ref["req_per_s"], 1)
result["p99_ratio"] = round(ours["p99_ms"] / ref["p99_ms"], 3)
json.dump(result, open("bench/results/infer.json", "w"), indent=2)
print("| service | req/s | p50 ms | p99 ms | non-2xx | peak RSS MiB |")
print("|---|---|---|---|---|---|")
for name in ("bloginfer_infer", "fastapi_pytorch"):
    r = result[name]
    print(f"| {name} | {r['req_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {r['peak_rss_mib']:.0f} |")
print(f"throughput {result['throughput_ratio']}x, p99 {result['p99_ratio']}x of the reference")
PY
