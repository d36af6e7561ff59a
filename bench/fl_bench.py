#!/usr/bin/env python3
"""Federated benchmark: `bloginfer fl run` with 2 workers x 10 rounds on the full
corpus, IID and Dirichlet(0.5), for fedavg and fedsgd (plus fedavg with f16
uploads). Reports wall time, per-round overhead (round time minus the slowest
worker's local training), bytes per round per client and final validation
accuracy; writes bench/results/fl.json.

Usage: python3 bench/fl_bench.py [path/to/bloginfer]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "bloginfer")
RUNS = [
    ("fedavg", "iid", []),
    ("fedavg", "dirichlet:0.5", []),
    ("fedsgd", "iid", []),
    ("fedsgd", "dirichlet:0.5", []),
    ("fedavg", "iid", ["--upload-dtype", "f16"]),
]


def run(strategy, partition, extra):
    work = tempfile.mkdtemp(prefix="fl-bench-")
    try:
        cmd = [BIN, "--models-dir", os.path.join(work, "models"), "fl", "run",
               "--workers", "2", "--rounds", "10", "--strategy", strategy,
               "--partition", partition, "--work-dir", os.path.join(work, "run"), *extra]
        start = time.monotonic()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.monotonic() - start
        with open(os.path.join(work, "run", "result.json")) as f:
            status = json.load(f)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rounds = [r for r in status["history"] if r["round"] > 0]
    mean = lambda xs: sum(xs) / len(xs)
    return {
        "strategy": strategy,
        "partition": partition,
        "upload_dtype": "f16" if "f16" in extra else "f32",
        "wall_seconds": round(wall, 2),
        "round_seconds_mean": round(mean([r["seconds"] for r in rounds]), 3),
        "slowest_local_train_seconds_mean": round(mean([r["slowest_train_seconds"] for r in rounds]), 3),
        "overhead_seconds_mean": round(mean([r["seconds"] - r["slowest_train_seconds"] for r in rounds]), 3),
        "eval_seconds_mean": round(mean([r["eval_seconds"] for r in rounds]), 3),
        "upload_bytes_per_client_round": int(mean([r["upload_bytes_mean"] for r in rounds])),
        "download_bytes_per_client_round": int(mean([r["download_bytes"] for r in rounds])),
        "final_val_accuracy": round(rounds[-1]["val_accuracy"], 4),
        "final_val_macro_f1": round(rounds[-1]["val_macro_f1"], 4),
        "round0_val_accuracy": round(status["history"][0]["val_accuracy"], 4),
    }


def main():
    results = []
    for strategy, partition, extra in RUNS:
        r = run(strategy, partition, extra)
        results.append(r)
        print(json.dumps(r), flush=True)
    out = os.path.join(ROOT, "bench", "results", "fl.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"machine": os.uname().machine, "cpus": os.cpu_count(), "runs": results}, f, indent=2)
    print("| strategy | partition | upload | wall s | round s | overhead s (eval) | up MB/client/round | down MB | accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['strategy']} | {r['partition']} | {r['upload_dtype']} | {r['wall_seconds']} | "
              f"{r['round_seconds_mean']} | {r['overhead_seconds_mean']} ({r['eval_seconds_mean']}) | "
              f"{r['upload_bytes_per_client_round'] / 1e6:.2f} | {r['download_bytes_per_client_round'] / 1e6:.2f} | "
              f"{r['final_val_accuracy']} |")


if __name__ == "__main__":
    main()
