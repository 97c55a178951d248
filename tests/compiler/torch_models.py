"""Torch model definitions for the PyTorch front-end tests (issue 14's coverage list, the
parts torchvision does not provide): small models, a BERT-style encoder with an attention
mask, a GPT-2-style decoder with a causal mask, LSTM/GRU classifiers and a U-Net with
ConvTranspose2d and interpolate. Imported only where torch is installed."""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights at a scale that keeps activations near 1 (so a wrong operator shows in
    the numbers), batch-norm statistics that are not the identity, and eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif name.endswith("weight"):
                p.copy_(0.8 + 0.4 * torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.rand(p.shape, generator=g) - 0.1)
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.4 * torch.rand(buf.shape, generator=g) - 0.2)
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=g))
    return model.eval()


def torchvision_models():
    """torchvision.models, or None. Its model definitions are pure Python; a wheel whose
    compiled operators do not match the installed torch fails `import torchvision` (it
    registers them on import), so the package's __init__ is skipped in that case."""
    try:
        return importlib.import_module("torchvision.models")
    except ImportError:
        return None
    except Exception:  # "operator torchvision::nms does not exist": a mismatched build
        for name in [m for m in sys.modules if m == "torchvision" or
                     m.startswith("torchvision.")]:
            del sys.modules[name]
        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            return None
        package = types.ModuleType("torchvision")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torchvision"] = package
        try:
            return importlib.import_module("torchvision.models")
        except Exception:
            return None


# ---- small models ----------------------------------------------------------------------------
def mlp():
    return nn.Sequential(nn.Linear(20, 32), nn.GELU(), nn.Linear(32, 16), nn.Tanh(),
                         nn.Linear(16, 5))


def cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(16), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


class Residual(nn.Module):
    def __init__(self, c: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class Net(nn.Module):
    """Nested like torchvision's ResNet, so state_dict names read layer1.0.conv1.weight."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(Residual(), Residual())
        self.pool = nn.AdaptiveAvgPool2d((2, 3))  # not a divisor of 16: per-axis averaging
        self.fc = nn.Linear(8 * 6, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


class Conv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1, dilation=1)
        self.pool = nn.AvgPool1d(2)
        self.norm = nn.GroupNorm(2, 6)

    def forward(self, x):
        return self.norm(F.leaky_relu(self.pool(self.conv(x)), 0.1))


def encoder_layer():
    return nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)


# ---- attention models ------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x, mask=None):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        if self.causal:
            causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
            att = att.masked_fill(~causal, float("-inf"))
        if mask is not None:  # 1 keeps a token, 0 masks it
            att = att + (1.0 - mask[:, None, None, :].to(att.dtype)) * -10000.0
        y = F.softmax(att, dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, causal: bool):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, causal)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d),
                                 nn.GELU(approximate="tanh" if causal else "none"),
                                 nn.Linear(4 * d, d))

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """GPT-2 style: token and position embeddings, causal pre-norm blocks, tied-free head."""

    def __init__(self, vocab: int = 50, d: int = 32, heads: int = 4, layers: int = 2,
                 length: int = 16):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(length, d)
        self.blocks = nn.ModuleList(Block(d, heads, True) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class Bert(nn.Module):
    """BERT style: word, position and type embeddings, torch's own encoder layers with a
    key padding mask from the attention mask, a tanh pooler on the first token."""

    def __init__(self, vocab: int = 50, d: int = 32, heads: int = 4, layers: int = 2,
                 length: int = 16):
        super().__init__()
        self.word, self.position = nn.Embedding(vocab, d), nn.Embedding(length, d)
        self.token_type = nn.Embedding(2, d)
        self.norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True,
                                       activation="gelu") for _ in range(layers))
        self.pooler = nn.Linear(d, d)

    def forward(self, ids, attention_mask):
        positions = self.position(torch.arange(ids.shape[1]))
        x = self.norm(self.word(ids) + positions + self.token_type(torch.zeros_like(ids)))
        padding = attention_mask == 0
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        return torch.tanh(self.pooler(x[:, 0]))


class RNNClassifier(nn.Module):
    def __init__(self, cell: str = "lstm"):
        super().__init__()
        kind = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = kind(8, 16, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(32, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


class UNet(nn.Module):
    def __init__(self, c: int = 8):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

        self.down1, self.down2, self.mid = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.up = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.up2 = block(4 * c, 2 * c)
        self.up1 = block(2 * c + c, c)
        self.out = nn.Conv2d(c, 2, 1)

    def forward(self, x):
        a = self.down1(x)
        b = self.down2(F.max_pool2d(a, 2))
        m = self.mid(F.max_pool2d(b, 2))
        u = self.up2(torch.cat([self.up(m), b], 1))
        u = F.interpolate(u, scale_factor=2, mode="bilinear", align_corners=False)
        u = self.up1(torch.cat([u, a], 1))
        return self.out(F.interpolate(u, size=(24, 40), mode="nearest"))  # down and up


def token_inputs(batch: int = 2, length: int = 16, vocab: int = 50):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 10:] = 0  # the second sequence is padded
    return ids, mask


class SelfAttention(nn.Module):
    """nn.MultiheadAttention with a key padding mask (its fused kernel under no_grad)."""

    def __init__(self, d: int = 16, heads: int = 2):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, x, padding):
        return self.attn(x, x, x, key_padding_mask=padding, need_weights=False)[0]


def padded_inputs(batch: int = 3, length: int = 6, d: int = 16):
    x = torch.randn(batch, length, d, generator=torch.Generator().manual_seed(3))
    padding = torch.zeros(batch, length, dtype=torch.bool)
    padding[1, 4:] = True
    return x, padding


class FusedAttention(SelfAttention):
    """ATen's fused attention kernel called directly (what the fast path calls): a boolean
    key padding mask, mask type 1."""

    def forward(self, x, padding):
        a = self.attn
        return torch._native_multi_head_attention(
            x, x, x, a.embed_dim, a.num_heads, a.in_proj_weight, a.in_proj_bias,
            a.out_proj.weight, a.out_proj.bias, padding, False, True, 1)[0]
