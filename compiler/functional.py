"""Functional API for forward() code, with torch.nn.functional's names and conventions.

Every function records one or a few IR operators in the active trace. Operators that need
no torch-style translation are reached by their registry name (`F.exp`, `F.maximum`, ...),
so there is no second list of operators here.
"""

from __future__ import annotations

import numpy as np

from ir import ShapeError
from ir import ops as _ops

from .frontends.tracing import op, where


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(x) for x in v)


def _pads(padding) -> tuple[int, int, int, int]:
    """torch padding (int or (h, w)) as the IR's [top, left, bottom, right]."""
    h, w = _pair(padding)
    return (h, w, h, w)


def __getattr__(name: str):
    """`F.<op>(*inputs, **attrs)` for any registered operator without a wrapper below."""
    if name.startswith("_") or name not in _ops.names():
        raise AttributeError(f"compiler.functional has no function {name!r}")
    return lambda *inputs, **attrs: op(name, *inputs, **attrs)


# ---- layers' functional forms --------------------------------------------------------------
def linear(x, weight, bias=None):
    return op("linear", x, weight, *([] if bias is None else [bias]))


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str):
        padding = same_padding(weight.shape[2:], _pair(dilation)) if padding == "same" else 0
    pad = padding if np.ndim(padding) == 1 and len(padding) == 4 else _pads(padding)
    return op("conv2d", x, weight, *([] if bias is None else [bias]), stride=_pair(stride),
              pad=pad, dilation=_pair(dilation), groups=groups)


def same_padding(kernel, dilation) -> tuple[int, int, int, int]:
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return op("max_pool2d", x, kernel=_pair(kernel_size), stride=_pair(stride or kernel_size),
              pad=_pads(padding), dilation=_pair(dilation), ceil_mode=ceil_mode)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return op("avg_pool2d", x, kernel=_pair(kernel_size), stride=_pair(stride or kernel_size),
              pad=_pads(padding), ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def adaptive_avg_pool2d(x, output_size=1):
    """Global pooling for output 1; otherwise an average pool whose windows tile the input
    exactly (the output size must divide the input's; None keeps that axis)."""
    sizes = (output_size, output_size) if output_size is None or np.isscalar(output_size) \
        else tuple(output_size)
    sizes = tuple(x.shape[-2 + i] if s is None else int(s) for i, s in enumerate(sizes))
    if sizes == (1, 1):
        return op("global_avg_pool", x)
    h, w = x.shape[-2:]
    if any(s <= 0 for s in sizes) or h % sizes[0] or w % sizes[1]:
        raise ShapeError(f"{where()}adaptive_avg_pool2d to {list(sizes)} needs output sizes "
                         f"that divide the input's {[h, w]}")
    if sizes == (h, w):
        return x
    kernel = (h // sizes[0], w // sizes[1])
    return op("avg_pool2d", x, kernel=kernel, stride=kernel)


def batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum=0.1,
               eps=1e-5):
    return op("batch_norm", x, weight, bias, running_mean, running_var, eps=eps,
              momentum=momentum, training=training)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    n = 1 if np.isscalar(normalized_shape) else len(normalized_shape)
    if bias is not None and weight is None:
        weight = np.ones(bias.shape, np.float32)
    args = [a for a in (weight, bias) if a is not None]
    return op("layer_norm", x, *args, axis=-n, eps=eps)


def dropout(x, p=0.5, training=True, seed=0):
    return op("dropout", x, ratio=p, training=training, seed=seed)


def embedding(indices, weight):
    return op("gather", weight, indices, axis=0)


# ---- activations ---------------------------------------------------------------------------
def relu(x):
    return op("relu", x)


def relu6(x):
    return op("relu6", x)


def leaky_relu(x, negative_slope=0.01):
    return op("leaky_relu", x, alpha=negative_slope)


def gelu(x, approximate="none"):
    return op("gelu", x, approximate=approximate)


def softmax(x, dim=-1):
    return op("softmax", x, axis=dim)


def log_softmax(x, dim=-1):
    return op("log_softmax", x, axis=dim)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return op("clip", x, min=min_val, max=max_val)


# ---- tensor functions ----------------------------------------------------------------------
def cat(tensors, dim=0):
    return op("concat", *tensors, axis=dim)


def stack(tensors, dim=0):
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def flatten(x, start_dim=0, end_dim=-1):
    return x.flatten(start_dim, end_dim)


def pad(x, pad, mode="constant", value=0.0):
    """torch's F.pad: pairs (begin, end) from the last axis backwards."""
    pairs = [tuple(pad[i:i + 2]) for i in range(0, len(pad), 2)]
    begins, ends = [0] * x.ndim, [0] * x.ndim
    for k, (b, e) in enumerate(pairs):
        begins[x.ndim - 1 - k], ends[x.ndim - 1 - k] = b, e
    mode = {"replicate": "edge"}.get(mode, mode)
    return op("pad", x, pads=begins + ends, mode=mode, value=value)


def matmul(a, b):
    return op("matmul", a, b)


# ---- losses --------------------------------------------------------------------------------
def cross_entropy(logits, target, reduction="mean"):
    return op("cross_entropy", logits, target, reduction=reduction)


def mse_loss(a, b, reduction="mean"):
    return op("mse_loss", a, b, reduction=reduction)
