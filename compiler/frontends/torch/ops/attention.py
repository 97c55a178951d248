"""PyTorch's fused inference kernels for attention, which `nn.MultiheadAttention` and
`nn.TransformerEncoderLayer` call under `torch.no_grad()` in eval mode (their "fast path"),
so torch.compile captures them and no Core ATen decomposition takes them apart. Each is
written out here as registry operators, following ATen's own definition
(aten/src/ATen/native/transformers/{attention,transformer}.cpp)."""

from __future__ import annotations

import math

import numpy as np

from .common import Builder, TorchNode, Unsupported, dtype_of, handler, rank


def _linear(b: Builder, x, w, bias=None):
    return b.call("linear", x, w, *([] if bias is None else [bias]))


def _heads(b: Builder, x, heads: int):
    """[B, T, D] -> [B, heads, T, D/heads]."""
    bt, t, d = x.shape
    return b.call("transpose", b.reshape(x, (bt, t, heads, d // heads)), perm=(0, 2, 1, 3))


def _masked_softmax(b: Builder, scores, mask, mask_type):
    """Softmax over the keys where the boolean `mask` holds True for positions to drop
    (type 0: [T, T]; 1: [B, T], a key padding mask; 2: [B, heads, T, T]); a row with every
    key dropped is NaN, as in ATen's CPU kernel."""
    if mask is None:
        return b.call("softmax", scores, axis=-1)
    if dtype_of(mask) != np.bool_:  # ATen reads a float mask as booleans: nonzero drops
        zero = b.call("equal", mask, np.asarray(0, dtype_of(mask)))
        mask = b.call("equal", zero, np.asarray(False))
    if mask_type == 1:  # [B, T] -> [B, 1, 1, T]; the others broadcast as they are
        mask = b.reshape(mask, (mask.shape[0], 1, 1, mask.shape[1]))
    filled = b.call("where", mask, np.asarray(-np.inf, dtype_of(scores)), scores)
    return b.call("softmax", filled, axis=-1)


def attention(b: Builder, query, key, value, embed_dim: int, heads: int, qkv_weight, qkv_bias,
              proj_weight, proj_bias, mask=None, mask_type=None):
    """softmax(q k^T / sqrt(d) masked) v, projected: ATen's native multi-head attention."""
    if rank(query) != 3:
        raise Unsupported("fused attention on an unbatched (2-D) query")
    d = int(embed_dim)
    weights = [b.call("slice", qkv_weight, starts=[k * d], ends=[(k + 1) * d], axes=[0])
               for k in range(3)]
    biases = [None] * 3 if qkv_bias is None else [
        b.call("slice", qkv_bias, starts=[k * d], ends=[(k + 1) * d], axes=[0])
        for k in range(3)]
    q, k, v = (_heads(b, _linear(b, x, w, bias), int(heads))
               for x, w, bias in zip((query, key, value), weights, biases))
    scale = np.asarray(1.0 / math.sqrt(d // int(heads)), dtype_of(q))
    scores = b.call("matmul", b.call("mul", q, scale), b.call("transpose", k, perm=(0, 1, 3, 2)))
    probs = _masked_softmax(b, scores, mask, mask_type)
    ctx = b.call("transpose", b.call("matmul", probs, v), perm=(0, 2, 1, 3))
    ctx = b.reshape(ctx, (ctx.shape[0], ctx.shape[1], d))
    return _linear(b, ctx, proj_weight, proj_bias)


@handler
def _native_multi_head_attention(b: Builder, n: TorchNode, query, key, value, embed_dim,
                                 num_head, qkv_weight, qkv_bias, proj_weight, proj_bias,
                                 mask=None, need_weights=True, average_attn_weights=True,
                                 mask_type=None):
    y = attention(b, query, key, value, embed_dim, num_head, qkv_weight, qkv_bias,
                  proj_weight, proj_bias, mask, mask_type)
    return y, None  # the attention weights are not built: a read of them is reported


@handler
def _transformer_encoder_layer_fwd(b: Builder, n: TorchNode, src, embed_dim, num_heads,
                                   qkv_weight, qkv_bias, proj_weight, proj_bias, use_gelu,
                                   norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2,
                                   norm_bias_2, ffn_weight_1, ffn_bias_1, ffn_weight_2,
                                   ffn_bias_2, mask=None, mask_type=None):
    def norm(x, w, bias):
        return b.call("layer_norm", x, w, bias, axis=rank(x) - 1, eps=float(eps))

    x = norm(src, norm_weight_1, norm_bias_1) if norm_first else src
    x = attention(b, x, x, x, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight,
                  proj_bias, mask, mask_type)
    x = b.call("add", x, src)
    if not norm_first:
        x = norm(x, norm_weight_1, norm_bias_1)
    residual = x
    if norm_first:
        x = norm(x, norm_weight_2, norm_bias_2)
    hidden = _linear(b, x, ffn_weight_1, ffn_bias_1)
    hidden = b.call("gelu", hidden) if use_gelu else b.call("relu", hidden)
    x = b.call("add", _linear(b, hidden, ffn_weight_2, ffn_bias_2), residual)
    if not norm_first:
        x = norm(x, norm_weight_2, norm_bias_2)
    return x
