#!/usr/bin/env bash
# Runs every benchmark one after another (run it on an idle machine) and prints
# the comparison table. Results land in bench/results/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/pytorch/setup.sh
PY="${BENCH_VENV:-target/bench-venv}/bin/python"
"$PY" -m pip install -q scikit-learn safetensors
cargo bench -p bloginfer-model --bench lstm
cargo bench -p bloginfer-model --bench epoch
"$PY" bench/pytorch/lstm_bench.py all
"$PY" bench/baseline_tfidf.py
python3 bench/compare.py
