"""Sequence models for the third-party suite, written in plain torch (not with compiler.nn):
a BERT-base-style encoder, a GPT-2-style decoder, and LSTM and GRU classifiers.

The attention blocks are written the way Hugging Face writes them (sizes read with
`x.size()`, views, permutes, a causal mask applied with `torch.where`), so that
`torch.onnx.export` with a dynamic batch axis produces what real exporters produce:
Shape/Gather/Concat-built reshapes, MatMul + Add + Softmax, transposes. The recurrent
models use `nn.LSTM`/`nn.GRU`, which export as the ONNX `LSTM`/`GRU` operators. The image
models of the suite come from torchvision (see third_party.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, D] -> [B, heads, T, D/heads]."""
    b, t, d = x.size()
    return x.view(b, t, heads, d // heads).permute(0, 2, 1, 3)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, T, Dh] -> [B, T, heads * Dh]."""
    b, h, t, dh = x.size()
    return x.permute(0, 2, 1, 3).contiguous().view(b, t, h * dh)


# ---- BERT-style encoder -------------------------------------------------------------------
class BertLayer(nn.Module):
    """Post-norm encoder layer: self-attention, Add & LayerNorm, GELU MLP, Add & LayerNorm."""

    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=1e-12)
        self.intermediate = nn.Linear(d, ff)
        self.output = nn.Linear(ff, d)
        self.out_norm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x):
        q = split_heads(self.query(x), self.heads)
        k = split_heads(self.key(x), self.heads)
        v = split_heads(self.value(x), self.heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.size(-1))
        ctx = merge_heads(torch.matmul(F.softmax(scores, dim=-1), v))
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))


class BertEncoder(nn.Module):
    """Token ids [B, T] -> pooled [B, D]: word + position + token-type embeddings, LayerNorm,
    `layers` encoder layers, then BERT's pooler (tanh of a linear map of the first token)."""

    def __init__(self, vocab=30522, d=768, heads=12, ff=3072, layers=4, max_len=512):
        super().__init__()
        self.words = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(max_len, d)
        self.token_type = nn.Embedding(2, d)
        self.norm = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(d, heads, ff) for _ in range(layers))
        self.pooler = nn.Linear(d, d)
        self.register_buffer("position_ids", torch.arange(max_len).unsqueeze(0),
                             persistent=False)

    def forward(self, ids):
        pos = self.position_ids[:, : ids.size(1)]
        x = self.words(ids) + self.positions(pos) + self.token_type(torch.zeros_like(ids))
        x = self.norm(x)
        for layer in self.layers:
            x = layer(x)
        return torch.tanh(self.pooler(x[:, 0]))


# ---- GPT-2-style decoder ------------------------------------------------------------------
def gelu_new(x):
    """GPT-2's tanh approximation of GELU, written out as GPT-2 does."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class GPT2Block(nn.Module):
    """Pre-norm decoder block with a fused QKV projection and a causal mask."""

    def __init__(self, d: int, heads: int, max_len: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        mask = torch.tril(torch.ones(max_len, max_len, dtype=torch.bool))
        self.register_buffer("bias", mask.view(1, 1, max_len, max_len), persistent=False)

    def forward(self, x):
        t = x.size(1)
        q, k, v = self.c_attn(self.ln_1(x)).split(x.size(-1), dim=2)
        q, k, v = (split_heads(a, self.heads) for a in (q, k, v))
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(v.size(-1))
        w = torch.where(self.bias[:, :, :t, :t], w, torch.finfo(w.dtype).min)
        x = x + self.c_proj(merge_heads(torch.matmul(F.softmax(w, dim=-1), v)))
        return x + self.mlp_proj(gelu_new(self.c_fc(self.ln_2(x))))


class GPT2Decoder(nn.Module):
    """Token ids [B, T] -> next-token logits [B, vocab] of the last position (tied
    embedding), after `layers` causal blocks."""

    def __init__(self, vocab=50257, d=768, heads=12, layers=4, max_len=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.h = nn.ModuleList(GPT2Block(d, heads, max_len) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, ids):
        pos = torch.arange(ids.size(1), dtype=torch.long).unsqueeze(0)
        x = self.wte(ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return torch.matmul(self.ln_f(x)[:, -1], self.wte.weight.t())


# ---- recurrent classifiers ----------------------------------------------------------------
class RecurrentClassifier(nn.Module):
    """Features [B, T, F] -> `rnn` (nn.LSTM or nn.GRU, batch-first, 2 layers) -> a linear
    head on the last step's output."""

    def __init__(self, rnn: type[nn.Module], features=128, hidden=256, classes=64):
        super().__init__()
        self.rnn = rnn(features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


SEQ_LEN = 128  # tokens for BERT and GPT-2
RNN_STEPS, RNN_FEATURES = 64, 128

MODELS = {  # name: (constructor, input kind)
    "bert": (lambda: BertEncoder(), "tokens:30522"),
    "gpt2": (lambda: GPT2Decoder(), "tokens:50257"),
    "lstm": (lambda: RecurrentClassifier(nn.LSTM), "sequence"),
    "gru": (lambda: RecurrentClassifier(nn.GRU), "sequence"),
}
