"""Functional API for forward() code, with torch.nn.functional's names and conventions.

Every function records one or a few IR operators in the active trace. torch's functions
that are also tensor methods (`torch.argmax(x, 1)`) call the traced tensor's method, and
operators that need no torch-style translation are reached by their registry name (`F.exp`,
`F.erf`, ...), so there is no second list of operators here.
"""

from __future__ import annotations

import math

import numpy as np

from ir import ShapeError
from ir import Value as _Value
from ir import ops as _ops

from .frontends.tensor_methods import as_dtype, scalar_dtype
from .frontends.tracing import Tensor, current, op
from .frontends.tracing import where as _layer
from .frontends.windows import adaptive_pool, conv_transpose


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(x) for x in v)


def _pads(padding) -> tuple[int, int, int, int]:
    """torch padding (int or (h, w)) as the IR's [top, left, bottom, right]."""
    h, w = _pair(padding)
    return (h, w, h, w)


def __getattr__(name: str):
    """torch's functions that are tensor methods, `F.<method>(x, *args)` = `x.<method>(*args)`
    (`torch.argmax(x, 1)`, `torch.gather(x, 1, idx)`, `torch.transpose(x, 0, 1)`), then
    `F.<op>(*inputs, **attrs)` for any other registered operator without a wrapper below."""
    if name.startswith("_"):
        raise AttributeError(f"compiler.functional has no function {name!r}")
    if callable(getattr(Tensor, name, None)):
        return lambda x, *args, **kwargs: getattr(_tensor(x), name)(*args, **kwargs)
    if name in _ops.names():
        return lambda *inputs, **attrs: op(name, *inputs, **attrs)
    raise AttributeError(f"compiler.functional has no function {name!r}")


def _tensor(x):
    """A traced tensor for `x`: an array (a parameter, a constant) enters as a weight."""
    return x if isinstance(x, Tensor) else Tensor(current().value(np.asarray(x)))


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
    if any(s <= 0 for s in sizes):
        raise ShapeError(f"{_layer()}adaptive_avg_pool2d to {list(sizes)} needs positive "
                         "output sizes")
    if sizes == (h, w):
        return x
    if h % sizes[0] or w % sizes[1] or x.ndim != 4:
        return _adaptive(x, sizes, "avg", "adaptive_avg_pool2d")
    kernel = (h // sizes[0], w // sizes[1])
    return op("avg_pool2d", x, kernel=kernel, stride=kernel)


# ---- 3-D convolution and pooling, transposed convolution, adaptive pooling -----------------
def _ntuple(v, k: int) -> tuple[int, ...]:
    """torch's size argument: an int, or a tuple of `k` ints."""
    return (int(v),) * k if np.isscalar(v) else tuple(int(x) for x in v)


def window_padding(padding, kernel, dilation) -> tuple[int, ...]:
    """torch's `padding` (int, tuple, 'same' or 'valid') as the IR's begins then ends; 'same'
    puts the odd unit at the end, as torch does."""
    k = len(kernel)
    if isinstance(padding, str):
        total = [d * (kk - 1) if padding == "same" else 0 for kk, d in zip(kernel, dilation)]
        return (*(t // 2 for t in total), *(t - t // 2 for t in total))
    p = _ntuple(padding, k)
    return (*p, *p)


def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch's F.conv3d; `padding` may also be the IR's six [begins, ends]."""
    dilation = _ntuple(dilation, 3)
    pad = tuple(padding) if np.ndim(padding) == 1 and len(padding) == 6 else \
        window_padding(padding, weight.shape[2:], dilation)
    return op("conv3d", x, weight, *([] if bias is None else [bias]),
              stride=_ntuple(stride, 3), pad=pad, dilation=dilation, groups=groups)


def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, k):
    """torch's transposed convolution over k spatial axes (1-D over a unit height), see
    frontends/windows.py; output_padding must be smaller than the stride or the dilation."""
    s, p, o, d = (_ntuple(v, k) for v in (stride, padding, output_padding, dilation))
    if any(oo >= max(ss, dd) for oo, ss, dd in zip(o, s, d)):
        raise ShapeError(f"{_layer()}output_padding {list(o)} must be smaller than the stride "
                         f"or the dilation ({list(s)}, {list(d)})")
    x, w = _tensor(x), _tensor(weight)
    if k == 1:
        x, w = x.unsqueeze(2), w.unsqueeze(2)
        s, p, o, d = (1, *s), (0, *p), (0, *o), (1, *d)
    b = None if bias is None else _tensor(bias).value
    y = Tensor(conv_transpose(_Trace, x.value, w.value, b, s, p, p, o, d, groups))
    return y.squeeze(2) if k == 1 else y


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups,
                           dilation, 1)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups,
                           dilation, 2)


def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups,
                           dilation, 3)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    p = _ntuple(padding, 3)
    return op("max_pool3d", x, kernel=_ntuple(kernel_size, 3),
              stride=_ntuple(stride or kernel_size, 3), pad=(*p, *p),
              dilation=_ntuple(dilation, 3), ceil_mode=ceil_mode)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    p = _ntuple(padding, 3)
    return op("avg_pool3d", x, kernel=_ntuple(kernel_size, 3),
              stride=_ntuple(stride or kernel_size, 3), pad=(*p, *p), ceil_mode=ceil_mode,
              count_include_pad=count_include_pad)


class _Trace:
    """The front ends' builder interface (`call` on ir.Values) over the active trace."""

    @staticmethod
    def call(name, *inputs, **attrs):
        return op(name, *(Tensor(v) if isinstance(v, _Value) else v for v in inputs),
                  **attrs).value


def _adaptive(x, output_size, kind: str, what: str, k: int | None = None):
    """Adaptive pooling of the last k axes to `output_size` (None keeps an axis), torch's
    windows for any size (see frontends/adaptive.py)."""
    x = _tensor(x)
    k = k or len(output_size)
    sizes = (output_size,) * k if output_size is None or np.isscalar(output_size) \
        else tuple(output_size)
    if len(sizes) != k or x.ndim < k + 1:
        raise ShapeError(f"{_layer()}{what} wants {k} output sizes over an input of rank "
                         f"{k + 1} or {k + 2}, got {output_size!r} for {list(x.shape)}")
    sizes = tuple(x.shape[x.ndim - k + i] if s is None else int(s) for i, s in enumerate(sizes))
    if any(s <= 0 for s in sizes):
        raise ShapeError(f"{_layer()}{what} needs positive output sizes, got {list(sizes)}")
    return Tensor(adaptive_pool(_Trace, x.value, sizes, kind))


def adaptive_avg_pool1d(x, output_size):
    return _adaptive(x, output_size, "avg", "adaptive_avg_pool1d", 1)


def adaptive_avg_pool3d(x, output_size):
    return _adaptive(x, output_size, "avg", "adaptive_avg_pool3d", 3)


def _no_indices(return_indices, what):
    if return_indices:
        raise ShapeError(f"{_layer()}{what}: return_indices=True is not supported")


def adaptive_max_pool1d(x, output_size, return_indices=False):
    _no_indices(return_indices, "adaptive_max_pool1d")
    return _adaptive(x, output_size, "max", "adaptive_max_pool1d", 1)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    _no_indices(return_indices, "adaptive_max_pool2d")
    return _adaptive(x, output_size, "max", "adaptive_max_pool2d", 2)


def adaptive_max_pool3d(x, output_size, return_indices=False):
    _no_indices(return_indices, "adaptive_max_pool3d")
    return _adaptive(x, output_size, "max", "adaptive_max_pool3d", 3)


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


def embedding(indices, weight, padding_idx=None):
    """Rows of `weight` picked by `indices`. With `padding_idx`, as torch: that row is read
    like any other but receives no gradient (it stays fixed in training)."""
    rows = op("gather", weight, indices, axis=0)
    if padding_idx is None:
        return rows
    n = weight.shape[0]
    if not -n <= padding_idx < n:
        raise ShapeError(f"{_layer()}padding_idx {padding_idx} is out of range for "
                         f"{n} embeddings")
    # padding positions read the row through detach: the same value, no gradient path
    pad = (_tensor(indices) == padding_idx % n).unsqueeze(-1)
    return op("where", pad, op("detach", rows), rows)


EMBEDDING_BAG_MODES = ("sum", "mean", "max")


def check_embedding_bag(max_norm=None, scale_grad_by_freq=False, mode="mean"):
    """Refuse what embedding_bag cannot do, at construction (an EmbeddingBag) or call."""
    if mode not in EMBEDDING_BAG_MODES:
        raise ShapeError(f"{_layer()}embedding_bag mode must be one of "
                         f"{', '.join(EMBEDDING_BAG_MODES)}, got {mode!r}")
    if max_norm is not None:
        raise ShapeError(f"{_layer()}embedding_bag max_norm is not supported: torch renormalises "
                         "the weight rows in place, and the IR has no mutation")
    if scale_grad_by_freq:
        raise ShapeError(f"{_layer()}embedding_bag scale_grad_by_freq is not supported")


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2.0,
                  scale_grad_by_freq=False, mode="mean", sparse=False, per_sample_weights=None,
                  include_last_offset=False, padding_idx=None):
    """torch's F.embedding_bag: the sum, mean or max of the rows each bag picks, [B, D].

    Bags are the rows of a 2-D `input`, or the runs of a 1-D `input` that `offsets` start
    (an array, or a traced tensor: membership is then computed in the graph; the shape, B,
    is the offsets' length either way). Entries equal to `padding_idx` are left out of their
    bag; an empty bag gives zeros. `per_sample_weights` (input's shape) scale the rows, in
    'sum' mode only. `sparse` changes only torch's gradient format and is ignored."""
    check_embedding_bag(max_norm, scale_grad_by_freq, mode)
    idx = _tensor(input)
    if idx.dtype not in ("i32", "i64") or idx.ndim not in (1, 2):
        raise ShapeError(f"{_layer()}embedding_bag input must be 1-D or 2-D integers, got "
                         f"{idx.dtype} {list(idx.shape)}")
    if (idx.ndim == 1) == (offsets is None):
        raise ShapeError(f"{_layer()}embedding_bag needs offsets with a 1-D input and none "
                         "with a 2-D input (each row is a bag)")
    if per_sample_weights is not None and mode != "sum":
        raise ShapeError(f"{_layer()}embedding_bag per_sample_weights need mode 'sum' "
                         f"(torch's rule), got {mode!r}")
    rows = embedding(idx, weight)  # [B, N, D], or [N, D] for a 1-D input
    mask = None if offsets is None else _tensor(_bag_members(offsets, idx.shape[0],
                                                             include_last_offset))  # [B, N]
    if padding_idx is not None:
        n = weight.shape[0]
        if not -n <= padding_idx < n:
            raise ShapeError(f"{_layer()}padding_idx {padding_idx} is out of range for {n} "
                             "embeddings")
        keep = idx != padding_idx % n
        mask = keep if mask is None else mask & keep.unsqueeze(0)
    if idx.ndim == 1:
        rows = rows.unsqueeze(0)  # [1, N, D]: every bag sees every position, masked
    if mode == "max":
        return _bag_max(rows, mask)
    w = per_sample_weights
    if mask is not None:
        w = where(mask, 1.0 if w is None else w, 0.0)
    if w is None:
        total = rows.sum(1)
    else:  # [B, 1, N] @ [B or 1, N, D]: the weighted sum as one batched matmul
        total = (_tensor(w).type(rows.dtype).unsqueeze(-2) @ rows).squeeze(-2)
    if mode == "sum":
        return total
    count = float(rows.shape[1]) if mask is None else \
        mask.float().sum(1, keepdim=True).clamp(min=1.0)
    return total / count


def _bag_members(offsets, n: int, include_last: bool):
    """[B, n] bool: position j is in bag b when offsets[b] <= j < offsets[b + 1] (n for the
    last bag, unless the offsets include the end)."""
    if not isinstance(offsets, Tensor):
        offsets = np.asarray(offsets)
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or (len(offsets) and (
                offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > n)):
            raise ShapeError(f"{_layer()}embedding_bag offsets must be non-decreasing integers "
                             f"from 0 to at most {n}, got {offsets.tolist()}")
        ends = np.append(offsets[1:], n)
        starts, ends = (offsets[:-1], ends[:-1]) if include_last else (offsets, ends)
        pos = np.arange(n)
        return (starts[:, None] <= pos) & (pos < ends[:, None])
    if offsets.ndim != 1 or offsets.dtype not in ("i32", "i64"):
        raise ShapeError(f"{_layer()}embedding_bag offsets must be 1-D integers, got "
                         f"{offsets.dtype} {list(offsets.shape)}")
    b = offsets.shape[0] - (1 if include_last else 0)
    end = np.full(1, n, offsets.value.type.np_dtype)
    ends = offsets[1:] if include_last else cat([offsets[1:], end])
    pos = np.arange(n, dtype=end.dtype)
    return (offsets[:b].unsqueeze(1) <= pos) & (ends.unsqueeze(1) > pos)


def _bag_max(rows, mask):
    """The largest of each bag's rows per feature (the gradient to the first maximum, as
    torch's), zeros for an empty bag."""
    if mask is None:
        return rows.max(1).values
    best = where(mask.unsqueeze(-1), rows, float("-inf")).max(1).values
    return where(mask.sum(1).unsqueeze(-1) > 0, best, 0.0)


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


def elu(x, alpha=1.0):
    return op("elu", x, alpha=alpha)


# torch's SELU constants (Klambauer et al., 2017)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(x):
    return op("elu", x, alpha=SELU_ALPHA) * SELU_SCALE


def silu(x):
    return x * op("sigmoid", x)


def mish(x):
    return x * op("tanh", op("softplus", x))


def hardsigmoid(x):
    return op("relu6", x + 3.0) / 6.0


def hardswish(x):
    return x * hardsigmoid(x)


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (torch's rule)."""
    if beta == 1.0:
        soft = op("softplus", x)
    else:
        soft = op("softplus", x * float(beta)) / float(beta)
    return where(x * float(beta) > threshold, x, soft)


def softsign(x):
    return x / (x.abs() + 1.0)


# ---- tensor functions ----------------------------------------------------------------------
def cat(tensors, dim=0):
    return op("concat", *tensors, axis=dim)


def stack(tensors, dim=0):
    return cat([_tensor(t).unsqueeze(dim) for t in tensors], dim)


def where(condition, input, other):
    """torch.where: `input` where `condition` holds, else `other` (either may be a scalar),
    after torch's type promotion."""
    if isinstance(input, Tensor):
        return input.where(condition, other)
    if isinstance(other, Tensor):  # promotion from the tensor's side, then back
        return other.where(_not(condition), input)
    if np.isscalar(input):  # two scalars: a tensor of condition's shape, torch's dtype
        input = full_like(condition, input, scalar_dtype(input))
    return _tensor(input).where(condition, other)


def _not(condition):
    return ~condition if isinstance(condition, Tensor) else ~np.asarray(condition, bool)


def einsum(equation: str, *operands):
    """torch.einsum for explicit indices (no '...', no repeated index within one operand):
    operands are contracted pairwise, left to right, each pair as one batched matmul."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    lhs, arrow, out = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if not arrow:  # implicit output: the indices seen once, in alphabetical order
        out = "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
    if "." in equation or len(terms) != len(operands) or \
            any(len(set(t)) != len(t) for t in terms):
        raise ShapeError(f"{_layer()}einsum {equation!r} with {len(operands)} operand(s): "
                         "one term per operand, without '...' or a repeated index in a term")
    xs = [_tensor(x) for x in operands]
    sizes = {}
    for t, x in zip(terms, xs):
        if len(t) != x.ndim:
            raise ShapeError(f"{_layer()}einsum term {t!r} for an operand of shape "
                             f"{list(x.shape)}")
        for c, n in zip(t, x.shape):
            if sizes.setdefault(c, n) != n:
                raise ShapeError(f"{_layer()}einsum index {c!r} has sizes {sizes[c]} and {n}")
    acc, idx = _sum_out(xs[0], terms[0], set(out).union(*terms[1:]))
    for k in range(1, len(xs)):
        keep = set(out).union(*terms[k + 1:])
        x, t = _sum_out(xs[k], terms[k], keep | set(idx))
        acc, idx = _contract(acc, idx, x, t, keep)
    acc, idx = _sum_out(acc, idx, set(out))
    return acc.permute(*(idx.index(c) for c in out)) if idx != out else acc


def _sum_out(x, idx: str, keep: set):
    """Sum away the indices of `x` nothing later needs."""
    drop = [i for i, c in enumerate(idx) if c not in keep]
    if not drop:
        return x, idx
    return x.sum(drop), "".join(c for c in idx if c in keep)


def _contract(a, ai: str, b, bi: str, keep: set):
    """a[batch, left, sum] @ b[batch, sum, right]: shared indices still needed are batch,
    shared ones no longer needed are summed, the rest stay on their side."""
    batch = [c for c in ai if c in bi and c in keep]
    summed = [c for c in ai if c in bi and c not in keep]
    left = [c for c in ai if c not in bi]
    right = [c for c in bi if c not in ai]
    size = dict(zip(ai, a.shape)) | dict(zip(bi, b.shape))

    def grouped(x, xi, groups):
        order = [c for g in groups for c in g]
        x = x.permute(*(xi.index(c) for c in order)) if order != list(xi) else x
        return x.reshape(*(int(np.prod([size[c] for c in g])) for g in groups))

    y = grouped(a, ai, (batch, left, summed)) @ grouped(b, bi, (batch, summed, right))
    idx = "".join(batch + left + right)
    return y.reshape(*(size[c] for c in idx)), idx


def full_like(x, fill_value, dtype=None):
    x = _tensor(x)
    return op("constant", value=float(fill_value), shape=x.shape,
              dtype=x.dtype if dtype is None else as_dtype(dtype))


def zeros_like(x, dtype=None):
    return full_like(x, 0, dtype)


def ones_like(x, dtype=None):
    return full_like(x, 1, dtype)


def flatten(x, start_dim=0, end_dim=-1):
    return x.flatten(start_dim, end_dim)


def pad(x, pad, mode="constant", value=0.0):
    """torch's F.pad: pairs (begin, end) from the last axis backwards."""
    pairs = [tuple(pad[i:i + 2]) for i in range(0, len(pad), 2)]
    begins, ends = [0] * x.ndim, [0] * x.ndim
    for k, (b, e) in enumerate(pairs):
        begins[x.ndim - 1 - k], ends[x.ndim - 1 - k] = b, e
    if mode == "circular":
        return _circular(_tensor(x), begins, ends)
    mode = {"replicate": "edge"}.get(mode, mode)
    return op("pad", x, pads=begins + ends, mode=mode, value=value)


def _circular(x, begins, ends):
    """torch's circular padding: per axis, the last `begin` cells wrapped around before and
    the first `end` cells after (slices and one concat)."""
    for a, (b, e) in enumerate(zip(begins, ends)):
        n = x.shape[a]
        if not (0 <= b <= n and 0 <= e <= n):
            raise ShapeError(f"{_layer()}circular padding ({b}, {e}) must be non-negative and "
                             f"at most the size {n} of axis {a}")
        if b or e:
            parts = [op("slice", x, starts=[n - b], ends=[n], axes=[a])] if b else []
            parts += [x] + ([op("slice", x, starts=[0], ends=[e], axes=[a])] if e else [])
            x = op("concat", *parts, axis=a)
    return x


def matmul(a, b):
    return op("matmul", a, b)


# ---- losses --------------------------------------------------------------------------------
def cross_entropy(logits, target, reduction="mean"):
    return op("cross_entropy", logits, target, reduction=reduction)


def mse_loss(a, b, reduction="mean"):
    return op("mse_loss", a, b, reduction=reduction)


# ---- more losses (torch.nn.functional's names; written with the operators above) -----------
def _reduced(loss, reduction: str):
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if reduction == "mean" else loss


def l1_loss(input, target, reduction="mean"):
    return _reduced((input - target).abs(), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0: L1)."""
    d = (input - target).abs()
    if beta == 0:
        return _reduced(d, reduction)
    return _reduced(where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta)."""
    d = (input - target).abs()
    return _reduced(where(d <= delta, d * d * 0.5, (d - 0.5 * delta) * delta), reduction)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """-(y log p + (1 - y) log(1 - p)), each log clamped at -100 as torch does."""
    logp = _tensor(input).log().clamp(min=-100.0)
    log1mp = (1.0 - _tensor(input)).log().clamp(min=-100.0)
    loss = -(target * logp + (1.0 - target) * log1mp)
    return _reduced(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """torch's stable form: (1 - y) x + (1 + (pos_weight - 1) y) softplus(-x), with
    softplus(-x) = log(1 + exp(-|x|)) + max(-x, 0)."""
    x = _tensor(input)
    soft = (1.0 + (-x.abs()).exp()).log() + op("relu", -x)
    scale = 1.0 if pos_weight is None else (_tensor(pos_weight) - 1.0) * target + 1.0
    loss = (1.0 - target) * x + scale * soft
    return _reduced(loss if weight is None else loss * weight, reduction)


def kl_div(input, target, reduction="mean", log_target=False):
    """target (log target - input), 0 where target is 0 (torch's xlogy); 'batchmean'
    divides the sum by the batch size."""
    if log_target:
        loss = _tensor(target).exp() * (target - input)
    else:
        t = _tensor(target)
        safe = where(t > 0, t, 1.0)  # log(1) = 0 where the term is 0 anyway
        loss = where(t > 0, t * safe.log(), 0.0) - t * input
    if reduction == "batchmean":
        return loss.sum() / float(loss.shape[0] if loss.ndim else 1)
    return _reduced(loss, reduction)


def _class_weights(weight, c: int, ndim: int):
    """Per-class weights shaped to broadcast along axis 1 of [N, C, *]."""
    return _tensor(weight).reshape(c, *(1,) * (ndim - 2))


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """-input[n, target[n]] (times the class weight); targets equal to ignore_index add 0,
    and 'mean' divides by the summed weights of the targets that count (torch's rule)."""
    return _indexed_loss(_tensor(input), target, weight, ignore_index, reduction, 0.0)


def _indexed_loss(logp, target, weight, ignore_index, reduction, smoothing):
    """Negative log-likelihood of class indices with weights, ignore_index and torch's
    label smoothing: (1 - e) w_t (-logp_t) + e / C sum_c w_c (-logp_c) per counted target."""
    c = logp.shape[1]
    target = _tensor(target)
    valid = target != ignore_index
    hot = op("one_hot", target.masked_fill(~valid, 0), depth=c, axis=1, dtype="bool")
    picked = where(hot, logp, 0.0).sum(1)
    w = 1.0 if weight is None else _class_weights(weight, c, logp.ndim)
    w_t = where(valid, 1.0, 0.0) if weight is None else \
        where(valid, where(hot, w, 0.0).sum(1), 0.0)
    loss = -picked * w_t
    if smoothing:
        every = where(valid, -(logp * w).sum(1), 0.0)
        loss = loss * (1.0 - smoothing) + every * (smoothing / c)
    if reduction == "mean":
        return loss.sum() / w_t.sum()
    return _reduced(loss, reduction)


def cross_entropy_loss(input, target, weight=None, ignore_index=-100, reduction="mean",
                       label_smoothing=0.0):
    """torch's F.cross_entropy with class weights, ignore_index and label smoothing; without
    weights or smoothing it is the fused cross_entropy operator."""
    target_is_index = _tensor(target).dtype in ("i32", "i64")
    if weight is None and not label_smoothing:
        if not target_is_index:
            return cross_entropy(input, target, reduction)
        # the fused operator on the counted targets (the default ignore_index, -100, marks
        # padding in torch code): ignored ones read class 0 and add 0
        valid = _tensor(target) != ignore_index
        per = cross_entropy(input, _tensor(target).masked_fill(~valid, 0), "none")
        loss = where(valid, per, 0.0)
        return loss.sum() / valid.sum().float() if reduction == "mean" else \
            _reduced(loss, reduction)
    logp = log_softmax(input, 1)
    if target_is_index:
        return _indexed_loss(logp, target, weight, ignore_index, reduction, label_smoothing)
    c = logp.shape[1]
    t = _tensor(target)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / c
    w = 1.0 if weight is None else _class_weights(weight, c, logp.ndim)
    loss = -(logp * t * w).sum(1)
    if reduction == "mean":
        return loss.sum() / float(loss.numel())
    return _reduced(loss, reduction)


# ---- vector similarity and resampling ------------------------------------------------------
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps)) along dim, after broadcasting."""
    x1, x2 = _tensor(x1), _tensor(x2)
    shape = tuple(np.broadcast_shapes(x1.shape, x2.shape))
    x1, x2 = x1.expand(*shape), x2.expand(*shape)
    n1 = (x1 * x1).sum(dim, keepdim=True).sqrt().clamp(min=eps)
    n2 = (x2 * x2).sum(dim, keepdim=True).sqrt().clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


_INTERPOLATE_MODES = {"nearest": None, "linear": 1, "bilinear": 2, "bicubic": 2}


def check_interpolate(size, scale_factor, mode, align_corners, recompute_scale_factor):
    """Refuse what interpolate cannot do, at construction (an Upsample layer) or call."""
    if mode not in _INTERPOLATE_MODES:
        raise ShapeError(f"{_layer()}interpolate mode {mode!r} is not supported (one of "
                         f"{', '.join(_INTERPOLATE_MODES)}; 'area', 'trilinear' and "
                         "'nearest-exact' are not written yet)")
    if (size is None) == (scale_factor is None):
        raise ShapeError(f"{_layer()}interpolate needs exactly one of size and scale_factor")
    if align_corners is not None and mode == "nearest":
        raise ShapeError(f"{_layer()}align_corners applies to linear modes only (torch's rule)")


def _per_axis(v, n: int, what: str):
    if v is None:
        return [None] * n
    vs = list(v) if isinstance(v, (list, tuple)) else [v] * n
    if len(vs) != n:
        raise ShapeError(f"{_layer()}interpolate {what} {v!r} for {n} spatial axes")
    return vs


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """torch's F.interpolate for 'nearest' (any size), 'linear', 'bilinear' and 'bicubic'
    (with or without align_corners): each spatial axis resampled in turn by gathering the
    source rows torch's index rule picks and weighting them (float32 index arithmetic, as
    torch's CPU kernels)."""
    check_interpolate(size, scale_factor, mode, align_corners, recompute_scale_factor)
    if antialias:
        raise ShapeError(f"{_layer()}interpolate antialias=True is not supported")
    x = _tensor(input)
    spatial = x.ndim - 2
    if spatial < 1 or (_INTERPOLATE_MODES[mode] not in (None, spatial)):
        raise ShapeError(f"{_layer()}interpolate mode {mode!r} on input {list(x.shape)}")
    sizes = _per_axis(size, spatial, "size")
    scales = _per_axis(scale_factor, spatial, "scale_factor")
    for k in range(spatial):
        a, n = 2 + k, x.shape[2 + k]
        out = int(sizes[k]) if sizes[k] is not None else math.floor(n * scales[k])
        scale = np.float32(1.0 / scales[k]) if scales[k] is not None and \
            not recompute_scale_factor else np.float32(n) / np.float32(out)
        resample = {"nearest": _nearest_axis, "bicubic": _cubic_axis}.get(mode, _linear_axis)
        x = resample(x, a, n, out, scale, bool(align_corners))
    return x


def _nearest_axis(x, a, n, out, scale, _):
    src = np.minimum(np.floor(np.arange(out, dtype=np.float32) * scale), n - 1)
    return op("gather", x, src.astype(np.int64), axis=a)


def _linear_axis(x, a, n, out, scale, align_corners):
    src = np.maximum(_source(out, n, scale, align_corners), 0)  # linear modes clamp at 0
    i0 = src.astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = (src - i0).astype(np.float32).reshape((out,) + (1,) * (x.ndim - a - 1))
    lo = op("gather", x, i0, axis=a)
    hi = op("gather", x, i1, axis=a)
    return lo * (1 - lam) + hi * lam


def _source(out, n, scale, align_corners):
    """torch's source coordinate of each output position (area_pixel_compute_source_index,
    before any clamping)."""
    dst = np.arange(out, dtype=np.float32)
    if align_corners:
        return dst * (np.float32(n - 1) / np.float32(out - 1)) if out > 1 else dst * 0
    return (dst + np.float32(0.5)) * scale - np.float32(0.5)


def _cubic_axis(x, a, n, out, scale, align_corners):
    """Keys' cubic convolution (A = -0.75, torch's) over the 4 nearest source rows, indices
    clamped to the edge."""
    src = _source(out, n, scale, align_corners)
    i = np.floor(src)
    t = (src - i).astype(np.float64)
    A = -0.75

    def near(d):  # |d| <= 1
        return ((A + 2) * d - (A + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A

    shape = (out,) + (1,) * (x.ndim - a - 1)
    acc = None
    for k, w in zip((-1, 0, 1, 2), (far(t + 1), near(t), near(1 - t), far(2 - t))):
        idx = np.clip(i.astype(np.int64) + k, 0, n - 1)
        term = op("gather", x, idx, axis=a) * w.astype(np.float32).reshape(shape)
        acc = term if acc is None else acc + term
    return acc
