#!/usr/bin/env python3
"""Privacy benchmark: `bloginfer fl run` with 10 simulated silos (worker
processes) on the bundled corpus, IID, 10 rounds of FedAvg, in four modes:
plain, secure aggregation, and client-level DP at two noise levels (and DP on
top of secure aggregation). Reports wall time, round time, bytes up and down
per worker per round, validation accuracy and (epsilon, delta); writes
bench/results/fl_privacy.json.

Usage: python3 bench/fl_privacy.py [path/to/bloginfer]
Env: FL_PRIVACY_ROUNDS (10), FL_PRIVACY_WORKERS (10), FL_PRIVACY_CLIP (DP clip norm, 1.0).
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
ROUNDS = os.environ.get("FL_PRIVACY_ROUNDS", "10")
WORKERS = os.environ.get("FL_PRIVACY_WORKERS", "10")
CLIP = os.environ.get("FL_PRIVACY_CLIP", "1.0")
RUNS = [
    ("plain", []),
    ("plain, norm bound off", ["--adaptive-norm-multiple", "0"]),
    ("secure aggregation", ["--secure-aggregation"]),
    ("DP z=0.3", ["--dp-noise-multiplier", "0.3", "--dp-clip", CLIP]),
    ("DP z=1.0", ["--dp-noise-multiplier", "1.0", "--dp-clip", CLIP]),
    ("secure aggregation + DP z=1.0",
     ["--secure-aggregation", "--dp-noise-multiplier", "1.0", "--dp-clip", CLIP]),
]


def run(name, extra):
    work = tempfile.mkdtemp(prefix="fl-privacy-")
    try:
        cmd = [BIN, "--models-dir", os.path.join(work, "models"), "fl", "run",
               "--workers", WORKERS, "--rounds", ROUNDS, "--partition", "iid",
               "--work-dir", os.path.join(work, "run"), *extra]
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
        "mode": name,
        "flags": extra,
        "wall_seconds": round(wall, 1),
        "round_seconds_mean": round(mean([r["seconds"] for r in rounds]), 2),
        "slowest_local_train_seconds_mean": round(mean([r["slowest_train_seconds"] for r in rounds]), 2),
        "upload_bytes_per_worker_round": int(mean([r["upload_bytes_mean"] for r in rounds])),
        "download_bytes_per_worker_round": int(mean([r["download_bytes"] for r in rounds])),
        "clipped_per_round_mean": round(mean([r.get("clipped", 0) for r in rounds]), 2),
        "final_val_accuracy": round(rounds[-1]["val_accuracy"], 4),
        "round0_val_accuracy": round(status["history"][0]["val_accuracy"], 4),
        "epsilon": status.get("epsilon"),
        "delta": status.get("delta"),
    }


def main():
    results = []
    for name, extra in RUNS:
        r = run(name, extra)
        print(json.dumps(r), flush=True)
        results.append(r)
    out = os.path.join(ROOT, "bench", "results", "fl_privacy.json")
    with open(out, "w") as f:
        json.dump({"workers": int(WORKERS), "rounds": int(ROUNDS), "dp_clip": float(CLIP),
                   "runs": results}, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
