"""Writes the PyTorch-compatibility fixture used by crates/model/tests/pytorch_compat.rs.

A tiny model of the reference architecture (nn.Embedding -> nn.LSTM -> linear)
with random weights; its state_dict goes to safetensors under PyTorch's names,
and the logits PyTorch computes for a few id sequences go to JSON (last-state,
mean and max pooling), so the Rust test can check it reproduces them.

    target/bench-venv/bin/python bench/pytorch/make_fixture.py crates/model/tests/fixtures
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

torch.manual_seed(0)
V, E, H = 40, 8, 6


class Net(torch.nn.Module):
    def __init__(self, bidirectional=False):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, E, padding_idx=0)
        self.lstm = torch.nn.LSTM(E, H, batch_first=True, bidirectional=bidirectional)
        self.fc = torch.nn.Linear(2 * H if bidirectional else H, 2)

    def forward(self, ids, pooling):
        out, (h_n, _) = self.lstm(self.embedding(ids))
        if pooling == "last":
            # Forward direction: its final state; backward: its state at t = 0,
            # i.e. after reading the whole text (h_n holds both).
            feat = torch.cat([h_n[0], h_n[1]], dim=-1) if self.lstm.bidirectional else h_n[-1]
        elif pooling == "mean":
            feat = out.mean(dim=1)
        else:
            feat = out.max(dim=1).values
        return self.fc(feat)


sequences = [[5, 9, 2, 33, 17, 8, 1], [3, 4], [12], [39, 38, 37, 36, 35]]
out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)
for name, bidirectional in [("pytorch_tiny", False), ("pytorch_tiny_bi", True)]:
    net = Net(bidirectional).eval()
    expected = {}
    with torch.no_grad():
        for pooling in ["last", "mean", "max"]:
            expected[pooling] = [net(torch.tensor([s]), pooling)[0].tolist() for s in sequences]
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out / f"{name}.safetensors"))
    (out / f"{name}.json").write_text(json.dumps(
        {"vocab": V, "embed": E, "hidden": H, "bidirectional": bidirectional, "torch": torch.__version__,
         "sequences": sequences, "logits": expected}, indent=1))
print("wrote", out)
