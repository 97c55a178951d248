"""Attention layers with torch.nn's parameters: MultiheadAttention, TransformerEncoderLayer.

Expressed through registered primitives (linear, split, reshape, transpose, matmul,
softmax, ...). For self-attention (query, key and value the same tensor) one `linear`
with the packed `in_proj_weight` [3E, E] projects all three, as torch does; otherwise the
packed weight is split in the graph, so weights keep their state_dict names.
"""

from __future__ import annotations

import math

import numpy as np

from ir import ShapeError

from .. import functional as F
from ..frontends import tracing
from . import init
from .layers import Dropout, Linear, next_dropout_seed
from .module import Module
from .norm import LayerNorm


def _same(a, b) -> bool:
    return a is b or (isinstance(a, tracing.Tensor) and isinstance(b, tracing.Tensor)
                      and a.value is b.value)


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: forward(query, key, value) -> (output, weights or None).

    Layouts are torch's: [L, N, E] (or [N, L, E] with batch_first, or unbatched [L, E]);
    weights come back as [N, L, S] (averaged over heads) or [N, H, L, S]."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False):
        super().__init__()
        init.check_sizes("MultiheadAttention", embed_dim=embed_dim, num_heads=num_heads)
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ShapeError(f"MultiheadAttention: embed_dim {embed_dim} must be a positive "
                             f"multiple of num_heads {num_heads}")
        if add_bias_kv or add_zero_attn:
            raise ShapeError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        if not 0 <= dropout < 1:
            raise ShapeError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.batch_first = batch_first
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.seed = next_dropout_seed()
        # torch's registration order and initialisation (xavier weights, zero biases)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = init.xavier_uniform((3 * embed_dim, embed_dim))
        else:
            self.q_proj_weight = init.xavier_uniform((embed_dim, embed_dim))
            self.k_proj_weight = init.xavier_uniform((embed_dim, self.kdim))
            self.v_proj_weight = init.xavier_uniform((embed_dim, self.vdim))
        self.in_proj_bias = np.zeros(3 * embed_dim, np.float32) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias = np.zeros(embed_dim, np.float32)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"

    # ---- pieces --------------------------------------------------------------------------
    def _project(self, query, key, value):
        e = self.embed_dim
        b = self.in_proj_bias
        if self._qkv_same_embed_dim and _same(query, key) and _same(key, value):
            return F.linear(query, self.in_proj_weight, b).split(e, -1)
        if self._qkv_same_embed_dim:
            ws = tracing.op("split", self.in_proj_weight, axis=0, sizes=(e, e, e))
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        bs = (None,) * 3 if b is None else tracing.op("split", b, axis=0, sizes=(e, e, e))
        return tuple(F.linear(x, w, bb) for x, w, bb in zip((query, key, value), ws, bs))

    def _heads(self, x, perm):
        """[.., .., E] -> [N, H, ., hd] (or [N, H, hd, .]) by one reshape and one transpose."""
        return x.reshape(*x.shape[:2], self.num_heads, self.head_dim).permute(*perm)

    def _mask(self, mask, shape, what):
        """An additive float mask for scores [N, H, L, S], from torch's mask forms."""
        n, h, tgt, src = shape
        if isinstance(mask, np.ndarray) and mask.dtype == np.bool_:
            # torch: True marks a position that may not be attended
            mask = np.where(mask, -np.inf, 0.0).astype(np.float32)
        elif isinstance(mask, tracing.Tensor) and mask.dtype == "bool":
            mask = F.where(mask, float("-inf"), np.float32(0))
        elif not isinstance(mask, (np.ndarray, tracing.Tensor)):
            raise ShapeError(f"{tracing.where()}{what} must be an array or a traced tensor")
        shape_ = tuple(mask.shape)
        if what == "attn_mask":
            if shape_ == (tgt, src):
                return mask
            if shape_ == (n * h, tgt, src):
                return mask.reshape(n, h, tgt, src)
            want = f"[{tgt}, {src}] or [{n * h}, {tgt}, {src}]"
        else:
            if shape_ in ((n, src), (src,)):
                return mask.reshape(n, 1, 1, src)
            want = f"[{n}, {src}]"
        raise ShapeError(f"{tracing.where()}{what} must be {want}, got {list(shape_)}")

    # ---- forward -------------------------------------------------------------------------
    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        where = tracing.where()
        unbatched = query.ndim == 2
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"{where}query, key and value must all be [L, N, E] (or [N, L, E] "
                             f"with batch_first, or unbatched [L, E]), got {list(query.shape)}, "
                             f"{list(key.shape)}, {list(value.shape)}")
        if query.shape[-1] != self.embed_dim or key.shape[-1] != self.kdim \
                or value.shape[-1] != self.vdim:
            raise ShapeError(f"{where}expected feature sizes E={self.embed_dim}, "
                             f"kdim={self.kdim}, vdim={self.vdim}; got query {list(query.shape)}"
                             f", key {list(key.shape)}, value {list(value.shape)}")
        batch_axis = 0 if self.batch_first and not unbatched else 1
        if unbatched:  # as a batch of one, keeping self-attention recognisable
            qb = query.unsqueeze(1)
            kb = qb if _same(key, query) else key.unsqueeze(1)
            value = qb if _same(value, query) else kb if _same(value, key) else \
                value.unsqueeze(1)
            query, key = qb, kb
        if key.shape[:2] != value.shape[:2] or key.shape[batch_axis] != query.shape[batch_axis]:
            raise ShapeError(f"{where}key {list(key.shape)} and value {list(value.shape)} must "
                             f"share sequence and batch sizes with query {list(query.shape)}")
        if is_causal and attn_mask is None:
            raise ShapeError(f"{where}is_causal needs an explicit attn_mask (as torch's does)")
        seq_axis = 1 - batch_axis
        n, tgt, src = query.shape[batch_axis], query.shape[seq_axis], key.shape[seq_axis]
        # [L, N, H, hd] -> [N, H, L, hd] (seq-first) or [N, L, H, hd] -> [N, H, L, hd]
        to_heads = (1, 2, 0, 3) if batch_axis == 1 else (0, 2, 1, 3)
        k_heads = (1, 2, 3, 0) if batch_axis == 1 else (0, 2, 3, 1)  # keys transposed: hd, S

        q, k, v = self._project(query, key, value)
        q = self._heads(q * (1 / math.sqrt(self.head_dim)), to_heads)
        scores = q @ self._heads(k, k_heads)  # [N, H, L, S]
        shape = (n, self.num_heads, tgt, src)
        if attn_mask is not None:
            scores = scores + self._mask(attn_mask, shape, "attn_mask")
        if key_padding_mask is not None:
            scores = scores + self._mask(key_padding_mask, shape, "key_padding_mask")
        weights = scores.softmax(-1)
        if self.training and self.dropout:
            weights = F.dropout(weights, self.dropout, True, self.seed)
        out = weights @ self._heads(v, to_heads)  # [N, H, L, hd]
        back = (2, 0, 1, 3) if batch_axis == 1 else (0, 2, 1, 3)
        out = out.permute(*back)
        out = self.out_proj(out.reshape(*out.shape[:2], self.embed_dim))
        if unbatched:
            out = out.squeeze(1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, weights.squeeze(0) if unbatched else weights


class TransformerEncoderLayer(Module):
    """torch.nn.TransformerEncoderLayer: self-attention and a feed-forward block, each with a
    residual connection and LayerNorm (after, or before with norm_first)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        # a Module registers as a submodule, as in torch
        self.activation = activation_fn(type(self).__name__, activation)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        """Masks as MultiheadAttention takes them (bool: True = not attended, or additive
        float); is_causal is torch's hint that src_mask is the causal mask (it needs one)."""
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


def activation_fn(layer: str, activation):
    """torch's activation argument: 'relu', 'gelu' or a callable (a Module, F.relu, ...)."""
    if not isinstance(activation, str):
        return activation
    if activation not in ("relu", "gelu"):
        raise ShapeError(f"{layer}: activation must be 'relu', 'gelu' or a callable, got "
                         f"{activation!r}")
    return {"relu": F.relu, "gelu": F.gelu}[activation]
