"""Reference service for the inference benchmark: what the original design runs,
FastAPI + PyTorch, one process, the checkpoint loaded at start-up, one forward pass
per request. Same architecture and weights as `bloginfer infer` (it reads our
safetensors checkpoint: PyTorch names, vocabulary and config in its metadata).

    CHECKPOINT=path/to/version.safetensors uvicorn ref_service:app --port 8001
"""
import json
import os
import unicodedata

import jieba
import torch
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from safetensors import safe_open

CHECKPOINT = os.environ["CHECKPOINT"]
with safe_open(CHECKPOINT, "pt") as f:
    META = f.metadata()
    WEIGHTS = {k: f.get_tensor(k) for k in f.keys()}
CONFIG = json.loads(META["config"])
VOCAB = {token: i for i, token in enumerate(json.loads(META["vocab"]))}
VERSION = os.path.basename(CHECKPOINT).removesuffix(".safetensors")
jieba.initialize()


class Net(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embedding = torch.nn.Embedding(c["vocab_size"], c["embed_dim"], padding_idx=0)
        self.lstm = torch.nn.LSTM(c["embed_dim"], c["hidden_dim"], batch_first=True,
                                  bidirectional=c["bidirectional"])
        self.fc = torch.nn.Linear(c["hidden_dim"] * (2 if c["bidirectional"] else 1), c["num_classes"])

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.fc(out.max(dim=1).values)


MODEL = Net(CONFIG)
MODEL.load_state_dict(WEIGHTS)
MODEL.eval()


def encode(text):
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    ids = [VOCAB.get(w, 1) for w in jieba.lcut(text, HMM=True) if w.strip()]
    return ids[: CONFIG["max_len"]] or [1]


class Request(BaseModel):
    text: str


app = FastAPI()


@app.post("/v1/sentiment")
def sentiment(req: Request):
    if not req.text.strip():
        raise HTTPException(status_code=422, detail="empty text")
    with torch.inference_mode():
        probs = torch.softmax(MODEL(torch.tensor([encode(req.text)])), dim=-1)[0].tolist()
    return {
        "label": "positive" if probs[1] > probs[0] else "negative",
        "score": probs[1],
        "probabilities": {"negative": probs[0], "positive": probs[1]},
        "model_version": VERSION,
    }
