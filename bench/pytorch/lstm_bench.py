#!/usr/bin/env python3
"""PyTorch reference benchmark for bloginfer's LSTM sentiment classifier.

The model is the original system's: Embedding(V, 128, padding_idx=0) -> LSTM(128, 128,
1 layer, unidirectional, batch_first) -> last hidden state h_n -> Dropout(0.5) ->
Linear(128, 2); CrossEntropyLoss, Adam(lr=1e-3), clip_grad_norm_(5.0).

Subcommands (each prints ONE JSON object on stdout; progress goes to stderr):
  step    synthetic training steps, V=20000, B=64, T in {128, 64, 32}
  epoch   one real training epoch over the corpus (jieba tokenisation timed apart)
  infer   eval-mode latency: B=1 and B=64 at T=64, under torch.inference_mode()
  all     the three above

The result is also merged into bench/results/pytorch.json (--out '' to skip).
A comparison tool only: nothing in the product imports it.
"""
import argparse
import collections
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(REPO, "bench", "results", "pytorch.json")
DEFAULT_CORPUS = os.environ.get("BENCH_CORPUS", "/work/shared/corpus/sentiment_zh.tsv")
if not os.path.exists(DEFAULT_CORPUS):
    DEFAULT_CORPUS = os.path.join(REPO, "data", "corpus", "sentiment_zh.tsv")

EMBED = 128
HIDDEN = 128
CLASSES = 2
PAD, UNK = 0, 1


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class LstmClassifier(nn.Module):
    """The original system's network."""

    def __init__(self, vocab_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBED, padding_idx=PAD)
        self.lstm = nn.LSTM(EMBED, HIDDEN, num_layers=1, batch_first=True, bidirectional=False)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        emb = self.embedding(x)
        _, (h_n, _) = self.lstm(emb)
        return self.fc(self.dropout(h_n[-1]))


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_trainer(vocab_size, seed):
    seed_all(seed)
    model = LstmClassifier(vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss.item()

    return model, step


def summarize_ms(times_s):
    ms = sorted(t * 1e3 for t in times_s)
    n = len(ms)
    return {
        "n": n,
        "median_ms": round(statistics.median(ms), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "p99_ms": round(ms[min(n - 1, int(round(0.99 * (n - 1))))], 4),
        "min_ms": round(ms[0], 4),
        "max_ms": round(ms[-1], 4),
    }


# ---------------------------------------------------------------- step

def bench_step(args):
    out = {"vocab": args.vocab, "batch": args.batch, "warmup_steps": args.warmup,
           "min_steps": args.min_steps, "min_seconds": args.min_seconds, "by_T": {}}
    for T in args.step_T:
        _, step = make_trainer(args.vocab, args.seed)
        g = torch.Generator().manual_seed(args.seed + T)
        x = torch.randint(2, args.vocab, (args.batch, T), generator=g)
        y = torch.randint(0, CLASSES, (args.batch,), generator=g)
        for _ in range(args.warmup):
            step(x, y)
        times = []
        t_start = time.perf_counter()
        while len(times) < args.min_steps or time.perf_counter() - t_start < args.min_seconds:
            t0 = time.perf_counter()
            loss = step(x, y)
            times.append(time.perf_counter() - t0)
        total = sum(times)
        r = summarize_ms(times)
        r["samples_per_s"] = round(args.batch * len(times) / total, 1)
        r["samples_per_s_median"] = round(args.batch / (r["median_ms"] / 1e3), 1)
        r["last_loss"] = round(loss, 4)
        out["by_T"][str(T)] = r
        log(f"step T={T}: {r['mean_ms']:.2f} ms/step mean, {r['median_ms']:.2f} median, "
            f"{r['samples_per_s']:.0f} samples/s over {len(times)} steps")
    return out


# ---------------------------------------------------------------- epoch

def load_corpus(path):
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[:2] != ["label", "text"]:
            raise SystemExit(f"{path}: expected header label<TAB>text, got {header}")
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            lab, _, text = line.partition("\t")
            labels.append(int(lab))
            texts.append(text)
    return labels, texts


def bench_epoch(args):
    import jieba
    jieba.setLogLevel(60)
    labels, texts = load_corpus(args.corpus)
    n = len(texts)
    t0 = time.perf_counter()
    jieba.initialize()
    t_init = time.perf_counter() - t0

    t0 = time.perf_counter()
    tokenized = [jieba.lcut(t) for t in texts]
    t_tok = time.perf_counter() - t0
    n_tokens = sum(len(t) for t in tokenized)
    n_chars = sum(len(t) for t in texts)
    log(f"epoch: jieba init {t_init:.2f} s; lcut {n} texts / {n_tokens} tokens in {t_tok:.2f} s")

    t0 = time.perf_counter()
    counts = collections.Counter(tok for toks in tokenized for tok in toks)
    itos = ["<pad>", "<unk>"] + [w for w, c in counts.most_common(args.vocab - 2) if c >= 1]
    stoi = {w: i for i, w in enumerate(itos)}
    T = args.max_len
    ids = np.zeros((n, T), dtype=np.int64)  # post-padding with <pad>=0, truncate to the first T
    for i, toks in enumerate(tokenized):
        row = [stoi.get(w, UNK) for w in toks[:T]]
        ids[i, :len(row)] = row
    x_all = torch.from_numpy(ids)
    y_all = torch.tensor(labels, dtype=torch.long)
    t_encode = time.perf_counter() - t0

    _, step = make_trainer(len(itos), args.seed)
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(n, generator=g)
    losses = []
    t0 = time.perf_counter()
    for b, start in enumerate(range(0, n, args.batch)):
        idx = perm[start:start + args.batch]
        losses.append(step(x_all[idx], y_all[idx]))
        if b % 50 == 0:
            log(f"epoch: batch {b}/{(n + args.batch - 1) // args.batch} loss {losses[-1]:.4f} "
                f"{time.perf_counter() - t0:.1f} s")
    t_train = time.perf_counter() - t0
    r = {
        "corpus": os.path.abspath(args.corpus),
        "texts": n,
        "tokens": n_tokens,
        "chars": n_chars,
        "jieba_init_s": round(t_init, 3),
        "tokenize_s": round(t_tok, 3),
        "tokenize_texts_per_s": round(n / t_tok, 1),
        "tokenize_tokens_per_s": round(n_tokens / t_tok, 1),
        "vocab_build_and_encode_s": round(t_encode, 3),
        "vocab_size": len(itos),
        "distinct_tokens": len(counts),
        "max_len": T,
        "batch": args.batch,
        "batches": len(losses),
        "truncated_texts": sum(1 for t in tokenized if len(t) > T),
        "epoch_train_s": round(t_train, 3),
        "samples_per_s": round(n / t_train, 1),
        "ms_per_batch_mean": round(t_train / len(losses) * 1e3, 3),
        "first_loss": round(losses[0], 4),
        "mean_loss_last_50_batches": round(statistics.fmean(losses[-50:]), 4),
    }
    log(f"epoch: {t_train:.1f} s training, {r['samples_per_s']:.0f} samples/s")
    return r


# ---------------------------------------------------------------- infer

def timed_calls(fn, x, warmup, min_calls, min_seconds):
    for _ in range(warmup):
        fn(x)
    times = []
    t_start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - t_start < min_seconds:
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return times


def bench_infer(args):
    seed_all(args.seed)
    model = LstmClassifier(args.vocab)
    model.eval()
    T = args.infer_T
    g = torch.Generator().manual_seed(args.seed + 1)

    def predict(x):
        with torch.inference_mode():
            return torch.softmax(model(x), dim=-1)

    x1 = torch.randint(2, args.vocab, (1, T), generator=g)
    single = summarize_ms(timed_calls(predict, x1, 20, args.infer_calls, 1.0))
    single["texts_per_s"] = round(1e3 / single["mean_ms"], 1)
    log(f"infer B=1 T={T}: median {single['median_ms']:.3f} ms, p99 {single['p99_ms']:.3f} ms")

    xb = torch.randint(2, args.vocab, (args.batch, T), generator=g)
    batch = summarize_ms(timed_calls(predict, xb, 5, args.infer_batch_calls, 2.0))
    batch["texts_per_s"] = round(args.batch / (batch["median_ms"] / 1e3), 1)
    log(f"infer B={args.batch} T={T}: median {batch['median_ms']:.3f} ms, {batch['texts_per_s']:.0f} texts/s")
    return {"vocab": args.vocab, "T": T, "single": single, "batch": {"B": args.batch, **batch}}


# ---------------------------------------------------------------- main

def meta(args):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    cudart = ""
    try:
        with open("/proc/self/maps") as f:
            cudart = next((l.split()[-1] for l in f if "libcudart.so" in l), "")
    except OSError:
        pass
    stubs = os.path.join(os.path.dirname(torch.__file__), "lib", "BENCH_CUDA_STUBS")
    if not cudart:
        cuda_libs = "none loaded"
    elif os.path.exists(stubs) and os.path.dirname(cudart) == os.path.dirname(stubs):
        cuda_libs = "stubs (bench/pytorch/make_cuda_stubs.py)"
    else:
        cuda_libs = "nvidia wheels: " + cudart
    import jieba
    return {
        "tool": "bench/pytorch/lstm_bench.py",
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "torch_cuda_libs": cuda_libs,
        "cuda_available": torch.cuda.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "numpy": np.__version__,
        "jieba": jieba.__version__,
        "python": platform.python_version(),
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "loadavg_at_start": loadavg(),
    }


def loadavg():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def int_list(s):
    return [int(v) for v in s.split(",") if v]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["step", "epoch", "infer", "all"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--vocab", type=int, default=20000, help="vocab size for step/infer, cap for epoch")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--step-T", type=int_list, default=[128, 64, 32], help="comma list, default 128,64,32")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--min-steps", type=int, default=30)
    p.add_argument("--min-seconds", type=float, default=5.0)
    p.add_argument("--corpus", default=DEFAULT_CORPUS)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--infer-T", type=int, default=64)
    p.add_argument("--infer-calls", type=int, default=200)
    p.add_argument("--infer-batch-calls", type=int, default=50)
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON file to merge results into ('' to skip)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    result = {"meta": meta(args)}
    cmds = ["step", "epoch", "infer"] if args.command == "all" else [args.command]
    fns = {"step": bench_step, "epoch": bench_epoch, "infer": bench_infer}
    for c in cmds:
        t0 = time.perf_counter()
        result[c] = fns[c](args)
        result[c]["bench_wall_s"] = round(time.perf_counter() - t0, 2)
        result[c]["loadavg_after"] = loadavg()

    if args.out:
        merged = {}
        if os.path.exists(args.out):
            try:
                with open(args.out) as f:
                    merged = json.load(f)
            except (OSError, ValueError):
                merged = {}
        merged.update(result)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(merged, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, args.out)
        log(f"wrote {args.out}")
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
