"""Neural-network operators: convolution, pooling, normalisation, linear algebra, softmax."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from ..tensor_type import TensorType
from . import grad_rules as G
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import axis as norm_axis
from .shape_rules import floats, integer, pair, quad, rank_at_least, window_out

WINDOW = {"stride": Attr("ints", (1, 1), *pair), "pad": Attr("ints", (0, 0, 0, 0), *quad),
          "dilation": Attr("ints", (1, 1), *pair)}


# ---- conv2d ------------------------------------------------------------------------------
def _conv_infer(x, w, b=None, *, stride, pad, dilation, groups):
    dtype = floats(x, w, *([b] if b else []))
    if x.rank != 4 or w.rank != 4:
        raise ShapeError(f"conv2d wants x [N,C,H,W] and weight [O,C/groups,KH,KW], got {x}, {w}")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c % groups or o % groups:
        raise ShapeError(f"groups={groups} must divide input channels {c} and output channels {o}")
    if cg != c // groups:
        raise ShapeError(f"input has {c} channels, weight {w} expects {cg * groups} "
                         f"(groups={groups})")
    if b is not None and b.shape != (o,):
        raise ShapeError(f"bias must be [{o}], got {b}")
    oh = window_out(h, kh, stride[0], pad[0], pad[2], dilation[0])
    ow = window_out(wd, kw, stride[1], pad[1], pad[3], dilation[1])
    return TensorType((n, o, oh, ow), dtype)


def windows(x, kernel, stride, dilation, out_hw):
    """[N, C, OH, OW, KH, KW] view of the (already padded) input's sliding windows."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    v = sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return v[:, :, : out_hw[0] * sh : sh, : out_hw[1] * sw : sw, ::dh, ::dw]


def _conv(x, w, b=None, *, stride, pad, dilation, groups):
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    oh = window_out(x.shape[2], kh, stride[0], pad[0], pad[2], dilation[0])
    ow = window_out(x.shape[3], kw, stride[1], pad[1], pad[3], dilation[1])
    win = windows(xp, (kh, kw), stride, dilation, (oh, ow))  # N C OH OW KH KW
    cols = win.reshape(n, groups, cg, oh, ow, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
    cols = cols.reshape(n, groups, oh * ow, cg * kh * kw)  # im2col, per group
    wg = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)
    y = np.matmul(cols, wg).transpose(0, 1, 3, 2).reshape(n, o, oh, ow)
    return y + b.reshape(1, o, 1, 1) if b is not None else y


def _conv_grad(b, node, grads):
    x, w = node.inputs[:2]
    (dy,) = grads
    dx = b.call("conv2d_grad_input", dy, w, shape=x.shape, **node.attrs)
    dw = b.call("conv2d_grad_weight", x, dy, kernel=w.shape[2:], **node.attrs)
    db = [b.call("reduce_sum", dy, axes=(0, 2, 3))] if len(node.inputs) == 3 else []
    return [dx, dw, *db]


register(OpDef(
    name="conv2d",
    infer=_conv_infer,
    compute=_conv,
    attrs={**WINDOW, "groups": Attr("int", 1, lambda g: g > 0, "positive")},
    arity=(2, 3),
    fusion=Fusion.COMPLEX,
    doc="2-D cross-correlation, weight [O, C/groups, KH, KW], optional bias [O]; "
        "pad=[top, left, bottom, right]",
    grad=_conv_grad))


# ---- pooling -----------------------------------------------------------------------------
POOL = {"kernel": Attr("ints", check=pair[0], rule=pair[1]), **WINDOW,
        "ceil_mode": Attr("bool", False)}


def pool_infer(x, *, kernel, stride, pad, dilation, ceil_mode, **_):
    if x.rank != 4:
        raise ShapeError(f"pooling wants x [N,C,H,W], got {x}")
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2 or pad[2] > kernel[0] // 2 \
            or pad[3] > kernel[1] // 2:
        raise ShapeError(f"padding {list(pad)} must be at most half the kernel {list(kernel)}")
    oh = window_out(x.shape[2], kernel[0], stride[0], pad[0], pad[2], dilation[0], ceil_mode)
    ow = window_out(x.shape[3], kernel[1], stride[1], pad[1], pad[3], dilation[1], ceil_mode)
    return TensorType((*x.shape[:2], oh, ow), floats(x))


def pool_windows(x, fill, kernel, stride, pad, dilation, ceil_mode):
    oh, ow = pool_infer(TensorType.of(x), kernel=kernel, stride=stride, pad=pad,
                         dilation=dilation, ceil_mode=ceil_mode).shape[2:]
    # ceil_mode may need extra room past the bottom/right padding: fill it like padding
    extra_h = max(0, (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
                  - (x.shape[2] + pad[0] + pad[2]))
    extra_w = max(0, (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
                  - (x.shape[3] + pad[1] + pad[3]))
    widths = ((0, 0), (0, 0), (pad[0], pad[2] + extra_h), (pad[1], pad[3] + extra_w))
    xp = np.pad(x, widths, constant_values=fill)
    return windows(xp, kernel, stride, dilation, (oh, ow)), widths


def _max_pool(x, *, kernel, stride, pad, dilation, ceil_mode):
    win, _ = pool_windows(x, -np.inf, kernel, stride, pad, dilation, ceil_mode)
    return win.max(axis=(4, 5))


def _avg_pool(x, *, kernel, stride, pad, dilation, ceil_mode, count_include_pad):
    win, widths = pool_windows(x, 0, kernel, stride, pad, dilation, ceil_mode)
    total = win.sum(axis=(4, 5))
    # divisor: window cells inside the input (or inside input+explicit pads), never the
    # extra ceil_mode margin -- torch's and onnxruntime's rule
    inside = np.zeros((1, 1, *x.shape[2:]), x.dtype)
    inside = np.pad(inside, widths, constant_values=0)
    lo_h, lo_w = (0, 0) if count_include_pad else (pad[0], pad[1])
    hi_h = x.shape[2] + pad[0] + (pad[2] if count_include_pad else 0)
    hi_w = x.shape[3] + pad[1] + (pad[3] if count_include_pad else 0)
    inside[..., lo_h:hi_h, lo_w:hi_w] = 1
    count = windows(inside, kernel, stride, dilation, total.shape[2:]).sum(axis=(4, 5))
    return (total / count).astype(x.dtype)


def _window_counts(b, x, dy, kernel, stride, pad, dilation, ceil_mode, count_include_pad):
    """avg_pool2d's divisor per output cell: a scalar when every window counts kernel cells,
    else a [1,1,OH,OW] tensor counted in IR by convolving a mask of ones."""
    (h, w), (oh, ow) = x.shape[2:], dy.shape[2:]
    extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - (n + lo + hi)) for o, s, d, k, n, lo, hi in
             ((oh, stride[0], dilation[0], kernel[0], h, pad[0], pad[2]),
              (ow, stride[1], dilation[1], kernel[1], w, pad[1], pad[3]))]
    if not any(extra) and (count_include_pad or not any(pad)):
        return G.scalar(b, kernel[0] * kernel[1], x)
    if count_include_pad:  # the explicit padding counts; the ceil_mode margin does not
        mask = G.const(b, 1.0, x.dtype, (1, 1, h + pad[0] + pad[2], w + pad[1] + pad[3]))
        conv_pad = (0, 0, extra[0], extra[1])
    else:
        mask = G.const(b, 1.0, x.dtype, (1, 1, h, w))
        conv_pad = (pad[0], pad[1], pad[2] + extra[0], pad[3] + extra[1])
    ones = G.const(b, 1.0, x.dtype, (1, 1, *kernel))
    return b.call("conv2d", mask, ones, stride=stride, pad=conv_pad, dilation=dilation)


def _max_pool_grad(b, node, grads):
    return [b.call("max_pool2d_grad", node.inputs[0], grads[0], **node.attrs)]


def _avg_pool_grad(b, node, grads):
    """A transposed depthwise convolution with a kernel of ones, of dy / window counts."""
    x, (dy,), a = node.inputs[0], grads, node.attrs
    window = {k: a[k] for k in ("stride", "pad", "dilation")}
    count = _window_counts(b, x, dy, a["kernel"], **window, ceil_mode=a["ceil_mode"],
                           count_include_pad=a["count_include_pad"])
    ones = G.const(b, 1.0, x.dtype, (x.shape[1], 1, *a["kernel"]))
    return [b.call("conv2d_grad_input", b.call("div", dy, count), ones, groups=x.shape[1],
                   shape=x.shape, **window)]


register(OpDef(
    name="max_pool2d",
    infer=pool_infer,
    compute=_max_pool,
    attrs=POOL,
    arity=(1, 1),
    fusion=Fusion.OPAQUE,
    doc="max over windows; padding never wins (it is -inf)",
    grad=_max_pool_grad))
register(OpDef(
    name="avg_pool2d",
    infer=pool_infer,
    compute=_avg_pool,
    attrs={**POOL, "count_include_pad": Attr("bool", True)},
    arity=(1, 1),
    fusion=Fusion.OPAQUE,
    doc="mean over windows; count_include_pad counts explicit padding in the divisor",
    grad=_avg_pool_grad))


def _gap_infer(x):
    rank_at_least(x, 3, "global_avg_pool")
    return TensorType((*x.shape[:2], *(1,) * (x.rank - 2)), floats(x))


def _gap_grad(b, node, grads):
    x = node.inputs[0]
    n = int(np.prod(x.shape[2:]))
    dy = b.call("mul", grads[0], G.scalar(b, 1 / max(n, 1), x))
    return [G.broadcast(b, dy, x.shape)]


register(OpDef(
    name="global_avg_pool",
    infer=_gap_infer,
    compute=lambda x: x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=x.dtype),
    attrs={},
    arity=(1, 1),
    fusion=Fusion.REDUCTION,
    doc="mean over all spatial axes, kept as size 1",
    grad=_gap_grad))


# ---- normalisation -----------------------------------------------------------------------
def _bn_infer(x, w, b, mean, var, **_):
    rank_at_least(x, 2, "batch_norm")
    c = x.shape[1]
    for name, t in (("weight", w), ("bias", b), ("running_mean", mean), ("running_var", var)):
        if t.shape != (c,):
            raise ShapeError(f"{name} must be [{c}] for {c} channels, got {t}")
    return TensorType(x.shape, floats(x, w, b, mean, var))


def centered(x, axes):
    """x minus its mean over `axes`, and the biased variance (both keeping `axes`).

    Both are taken about the first element of each group: when the values share a large
    offset (1000 +- 0.01), x - x0 is exact, whereas x - mean would carry the rounding of a
    mean stored at the offset's scale (ulp(1000) / 0.01 ~ 1e-2 of the normalised output)."""
    first = tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))
    d = x - x[first]
    xc = d - d.mean(axis=axes, keepdims=True)
    return xc, (xc * xc).mean(axis=axes, keepdims=True)


def _bn(x, w, b, mean, var, *, eps, momentum, training):
    axes = (0, *range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:  # batch statistics, biased variance (as torch normalises)
        xc, var = centered(x, axes)
    else:
        xc = x - mean.reshape(shape)
    scale = (w.reshape(shape) / np.sqrt(var.reshape(shape) + x.dtype.type(eps)))
    return (xc * scale + b.reshape(shape)).astype(x.dtype)


def _bn_grad(b, node, grads):
    """Training: through the batch statistics (the running ones do not affect the output).
    Inference: an affine map per channel, differentiable in every operand."""
    x, w, _, mean, var = node.inputs
    (dy,) = grads
    axes = (0, *range(2, len(x.shape)))
    per_channel = (1, x.shape[1]) + (1,) * (len(x.shape) - 2)
    db = b.call("reduce_sum", dy, axes=axes)
    if node.attrs["training"]:
        xhat, rstd = G.standardize(b, x, axes, node.attrs["eps"])
        dw = b.call("reduce_sum", b.call("mul", dy, xhat), axes=axes)
        g = b.call("mul", dy, G.reshape(b, w, per_channel))
        return [G.standardize_grad(b, g, xhat, rstd, axes), dw, db, None, None]
    eps = G.scalar(b, node.attrs["eps"], var)
    rstd = b.call("div", G.scalar(b, 1.0, var), b.call("sqrt", b.call("add", var, eps)))
    scale = b.call("mul", w, rstd)
    xc = b.call("sub", x, G.reshape(b, mean, per_channel))
    dx = b.call("mul", dy, G.reshape(b, scale, per_channel))
    dyxc = b.call("reduce_sum", b.call("mul", dy, xc), axes=axes)
    dvar = b.call("mul", dyxc, b.call("mul", scale, b.call("mul", b.call("mul", rstd, rstd),
                                                            G.scalar(b, -0.5, var))))
    return [dx, b.call("mul", dyxc, rstd), db, b.call("neg", b.call("mul", db, scale)), dvar]


register(OpDef(
    name="batch_norm",
    infer=_bn_infer,
    compute=_bn,
    attrs={"eps": Attr("float", 1e-5, lambda v: v >= 0, ">= 0"),
           "momentum": Attr("float", 0.1), "training": Attr("bool", False)},
    arity=(5, 5),
    fusion=Fusion.BROADCAST,
    doc="per-channel (axis 1) normalisation: running statistics, or batch statistics in training",
    grad=_bn_grad))


def _ln_infer(x, w=None, b=None, *, axis: int, eps):
    a = norm_axis(axis, x.rank, "layer_norm axis")
    for t in (w, b):
        if t is not None and t.shape != x.shape[a:]:
            raise ShapeError(f"layer_norm scale/bias must be {list(x.shape[a:])}, got {t}")
    return TensorType(x.shape, floats(x, *(t for t in (w, b) if t)))


def _ln(x, w=None, b=None, *, axis, eps):
    xc, var = centered(x, tuple(range(norm_axis(axis, x.ndim), x.ndim)))
    y = xc / np.sqrt(var + x.dtype.type(eps))
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(x.dtype)


def _ln_grad(b, node, grads):
    x, (dy,) = node.inputs[0], grads
    w, bias = [*node.inputs[1:], None, None][:2]
    axes = tuple(range(norm_axis(node.attrs["axis"], len(x.shape)), len(x.shape)))
    xhat, rstd = G.standardize(b, x, axes, node.attrs["eps"])
    g = b.call("mul", dy, w) if w is not None else dy
    out = [G.standardize_grad(b, g, xhat, rstd, axes)]
    if w is not None:
        out.append(G.sum_to(b, b.call("mul", dy, xhat), w.shape))
    if bias is not None:
        out.append(G.sum_to(b, dy, bias.shape))
    return out


register(OpDef(
    name="layer_norm",
    infer=_ln_infer,
    compute=_ln,
    attrs={"axis": Attr("int", -1), "eps": Attr("float", 1e-5, lambda v: v >= 0, ">= 0")},
    arity=(1, 3),
    fusion=Fusion.REDUCTION,
    doc="normalise over axes [axis, rank), then scale and shift (ONNX LayerNormalization)",
    grad=_ln_grad))


def _dropout(x, *, ratio, training, seed):
    if not training or ratio == 0:
        return x.copy()
    keep = np.random.default_rng(seed).random(x.shape) >= ratio
    return np.where(keep, x / x.dtype.type(1 - ratio), x.dtype.type(0)).astype(x.dtype)


def _dropout_grad(b, node, grads):
    """The same seeded mask and scale, applied to the gradient."""
    a = node.attrs
    return [b.call("dropout", grads[0], **a) if a["training"] and a["ratio"] else grads[0]]


register(OpDef(
    name="dropout",
    infer=lambda x, **_: TensorType(x.shape, floats(x)),
    compute=_dropout,
    attrs={"ratio": Attr("float", 0.5, lambda p: 0 <= p < 1, "0 <= ratio < 1"),
           "training": Attr("bool", False), "seed": Attr("int", 0)},
    arity=(1, 1),
    fusion=Fusion.ELEMENTWISE,
    doc="identity in inference; in training zeroes with probability ratio (seeded mask) and "
        "scales the rest by 1/(1-ratio)",
    grad=_dropout_grad))


register(OpDef(
    name="detach",
    infer=lambda x: x,
    compute=lambda x: x.copy(),
    attrs={},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,  # a copy, like reshape: never inside elementwise bodies
    doc="the value unchanged, with no gradient flowing back through it (torch's "
        "Tensor.detach; Embedding's padding_idx row is kept fixed with it)",
    # zero by definition, not by calculus: autodiff adds nothing to the input's gradient
    grad=lambda b, node, grads: [None]))


# ---- linear algebra ----------------------------------------------------------------------
def _linear_infer(x, w, b=None):
    dtype = floats(x, w, *([b] if b else []))
    rank_at_least(x, 1, "linear input")
    if w.rank != 2:
        raise ShapeError(f"weight must be [out_features, in_features], got {w}")
    if x.shape[-1] != w.shape[1]:
        raise ShapeError(f"input has {x.shape[-1]} features ({x}) but weight {w} expects "
                         f"{w.shape[1]}")
    if b is not None and b.shape != (w.shape[0],):
        raise ShapeError(f"bias must be [{w.shape[0]}], got {b}")
    return TensorType((*x.shape[:-1], w.shape[0]), dtype)


def _linear_grad(b, node, grads):
    x, w = node.inputs[:2]
    (dy,) = grads
    (n_out, n_in), rows = w.shape, int(np.prod(x.shape[:-1]))
    dw = b.call("matmul", b.call("transpose", G.reshape(b, dy, (rows, n_out)), perm=(1, 0)),
                G.reshape(b, x, (rows, n_in)))
    out = [b.call("matmul", dy, w), dw]
    if len(node.inputs) == 3:
        lead = tuple(range(len(dy.shape) - 1))
        out.append(b.call("reduce_sum", dy, axes=lead) if lead else dy)
    return out


register(OpDef(
    name="linear",
    infer=_linear_infer,
    compute=lambda x, w, b=None: x @ w.T if b is None else x @ w.T + b,
    attrs={},
    arity=(2, 3),
    fusion=Fusion.COMPLEX,
    doc="x @ weight.T + bias, weight [out, in] as torch lays it out",
    grad=_linear_grad))


def _matmul_infer(a, b):
    dtype = floats(a, b)
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"matmul needs operands of rank >= 1, got {a}, {b}")
    k1 = a.shape[-1]
    k2 = b.shape[0] if b.rank == 1 else b.shape[-2]
    if k1 != k2:
        raise ShapeError(f"inner dimensions differ: {a} @ {b}")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"batch dimensions do not broadcast: {a} @ {b}") from None
    shape = (*batch, *a.shape[-2:-1], *b.shape[-1:] * (b.rank > 1))
    return TensorType(shape, dtype)


def _matmul_grad(b, node, grads):
    """1-D operands are promoted to matrices (as numpy does), broadcast batch axes summed."""
    p, q = node.inputs
    p2 = p if len(p.shape) > 1 else G.reshape(b, p, (1, *p.shape))
    q2 = q if len(q.shape) > 1 else G.reshape(b, q, (*q.shape, 1))
    batch = np.broadcast_shapes(p2.shape[:-2], q2.shape[:-2])
    dy = G.reshape(b, grads[0], (*batch, p2.shape[-2], q2.shape[-1]))

    def t(v):
        r = len(v.shape)
        return b.call("transpose", v, perm=(*range(r - 2), r - 1, r - 2))

    dp = G.sum_to(b, b.call("matmul", dy, t(q2)), p2.shape)
    dq = G.sum_to(b, b.call("matmul", t(p2), dy), q2.shape)
    return [G.reshape(b, dp, p.shape), G.reshape(b, dq, q.shape)]


register(OpDef(
    name="matmul",
    infer=_matmul_infer,
    compute=lambda a, b: np.asarray(np.matmul(a, b)),
    attrs={},
    arity=(2, 2),
    fusion=Fusion.COMPLEX,
    doc="numpy matmul: batched, broadcasting, 1-D operands promoted and squeezed",
    grad=_matmul_grad))


# ---- softmax -----------------------------------------------------------------------------
def _softmax(x, *, axis):  # initial: an empty axis (a zero-size tensor) has no max
    e = np.exp(x - x.max(axis=axis, keepdims=True, initial=-np.inf))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, *, axis):
    s = x - x.max(axis=axis, keepdims=True, initial=-np.inf)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def _softmax_infer(x, *, axis: int):
    rank_at_least(x, 1, "softmax")
    norm_axis(axis, x.rank)
    return TensorType(x.shape, floats(x))


def _softmax_grad(b, node, grads):  # y * (dy - sum(dy * y))
    y, (dy,), axis = node.output, grads, node.attrs["axis"]
    s = b.call("reduce_sum", b.call("mul", dy, y), axes=[axis], keepdims=True)
    return [b.call("mul", y, b.call("sub", dy, s))]


def _log_softmax_grad(b, node, grads):  # dy - softmax * sum(dy)
    y, (dy,), axis = node.output, grads, node.attrs["axis"]
    s = b.call("reduce_sum", dy, axes=[axis], keepdims=True)
    return [b.call("sub", dy, b.call("mul", b.call("exp", y), s))]


register(OpDef(
    name="softmax",
    infer=_softmax_infer,
    compute=_softmax,
    attrs={"axis": Attr("int", -1)},
    arity=(1, 1),
    fusion=Fusion.REDUCTION,
    doc="exp(x - max) / sum(exp(x - max)) along axis",
    grad=_softmax_grad))
register(OpDef(
    name="log_softmax",
    infer=_softmax_infer,
    compute=_log_softmax,
    attrs={"axis": Attr("int", -1)},
    arity=(1, 1),
    fusion=Fusion.REDUCTION,
    doc="x - max - log(sum(exp(x - max))) along axis",
    grad=_log_softmax_grad))


# ---- gather (embedding) ------------------------------------------------------------------
def _gather_infer(data, idx, *, axis: int):
    integer(idx, "gather indices")
    a = norm_axis(axis, data.rank)
    return TensorType((*data.shape[:a], *idx.shape, *data.shape[a + 1:]), data.dtype)


def _gather(data, idx, *, axis):
    a = norm_axis(axis, data.ndim)
    n = data.shape[a]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ShapeError(f"gather index out of range [-{n}, {n}): min {idx.min()}, "
                         f"max {idx.max()}")
    return np.asarray(np.take(data, idx, axis=a))  # an array even when picking one element


def _gather_grad(b, node, grads):
    data, idx = node.inputs
    a = norm_axis(node.attrs["axis"], len(data.shape))
    return [b.call("scatter_add", grads[0], idx, axis=a, size=data.shape[a]), None]


register(OpDef(
    name="gather",
    infer=_gather_infer,
    compute=_gather,
    attrs={"axis": Attr("int", 0)},
    arity=(2, 2),
    fusion=Fusion.INJECTIVE,
    doc="rows of data picked by integer indices (embedding lookup); "
               "negative indices count from the end",
    grad=_gather_grad))
