"""Prints the markdown comparison table of bloginfer against the PyTorch reference
from bench/results/*.json (written by the benchmarks; see bench/run.sh)."""
import json
from pathlib import Path

R = Path(__file__).resolve().parent / "results"


def load(name):
    p = R / name
    return json.loads(p.read_text()) if p.exists() else None


def main() -> None:
    torch, step, epoch = load("pytorch.json"), load("rust_step.json"), load("rust_epoch.json")
    rows = []
    if torch and step:
        for t in ("128", "64", "32"):
            ours = step["step"][f"T{t}"]["samples_per_s"]
            ref = torch["step"]["by_T"][t]["samples_per_s"]
            rows.append((f"training step, B=64, T={t} (samples/s)", f"{ours:,.0f}", f"{ref:,.0f}", f"{ours / ref:.2f}x"))
    if torch and epoch:
        ref = torch["epoch"]["epoch_train_s"]
        ours = epoch["epoch_bucketed"]["seconds"]
        pad = epoch["epoch_padded_128"]["seconds"]
        rows.append(("one epoch, bucketed vs padded to 128 (s)", f"{ours:.1f}", f"{ref:.1f}", f"{ref / ours:.2f}x faster"))
        rows.append(("one epoch, ours padded to 128 too (s)", f"{pad:.1f}", f"{ref:.1f}", f"{ref / pad:.2f}x faster"))
        rows.append(("tokenisation (texts/s)", f"{epoch['tokenize']['texts_per_s']:,.0f}",
                     f"{torch['epoch']['tokenize_texts_per_s']:,.0f}",
                     f"{epoch['tokenize']['texts_per_s'] / torch['epoch']['tokenize_texts_per_s']:.1f}x"))
    if torch and step:
        ours, ref = step["infer"]["single_ms_median"], torch["infer"]["single"]["median_ms"]
        rows.append(("predict one text, T=64 (median ms)", f"{ours:.3f}", f"{ref:.3f}", f"{ref / ours:.2f}x faster"))
        ours, ref = step["infer"]["batch64_ms_median"], torch["infer"]["batch"]["median_ms"]
        rows.append(("predict batch of 64, T=64 (median ms)", f"{ours:.2f}", f"{ref:.2f}", f"{ref / ours:.2f}x faster"))
    print("| measure | bloginfer | PyTorch | ratio |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
