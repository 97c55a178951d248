"""Operators the backward passes need that forward models rarely write themselves.

Reverse-mode differentiation builds gradients from registered operators only (see
`_grad.py`); these fill the gaps: comparisons and `where` (masks for relu, max, clip),
`broadcast_to` (the adjoint of a reduction), `one_hot` and `scatter_add` (the adjoints of
class-index losses and of gather/embedding), the two halves of conv2d's gradient (the
input half is a transposed convolution, and also gives avg_pool2d's gradient),
max_pool2d's gradient, and dropout with a per-call seed input (a fresh mask each training
step, the same mask in the forward and backward pass).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..tensor_type import DTYPES, TensorType
from . import grad_rules as G
from .nn import POOL, WINDOW, pool_infer, pool_windows, windows
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import axis as norm_axis
from .shape_rules import broadcast, floats, integer, pair, same_dtype, window_out

SHAPE = {"shape": Attr("ints", check=lambda v: all(d >= 0 for d in v),
                       rule="dimensions must be >= 0")}
DTYPE = {"dtype": Attr("str", "f32", lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}")}


# ---- comparisons and selection -------------------------------------------------------------
def _compare_infer(a, b):
    same_dtype(a, b)
    return TensorType(broadcast(a, b), "bool")


register(OpDef(
    name="greater",
    infer=_compare_infer,
    compute=lambda a, b: np.asarray(np.greater(a, b)),
    attrs={},
    arity=(2, 2),
    fusion=Fusion.BROADCAST,
    doc="a > b elementwise (bool); NaN compares false"))
register(OpDef(
    name="equal",
    infer=_compare_infer,
    compute=lambda a, b: np.asarray(np.equal(a, b)),
    attrs={},
    arity=(2, 2),
    fusion=Fusion.BROADCAST,
    doc="a == b elementwise (bool); NaN equals nothing",
    commutative=True))


def _where_infer(cond, a, b):
    if cond.dtype != "bool":
        raise ShapeError(f"where's condition must be bool, got {cond}")
    return TensorType(broadcast(cond, a, b), same_dtype(a, b))


def _where_grad(b, node, grads):
    cond, x, y = node.inputs
    (dy,) = grads
    return [None, G.sum_to(b, G.mask(b, cond, dy), x.shape),
            G.sum_to(b, b.call("where", cond, G.scalar(b, 0.0, dy), dy), y.shape)]


register(OpDef(
    name="where",
    infer=_where_infer,
    compute=lambda c, a, b: np.asarray(np.where(c, a, b)),
    attrs={},
    arity=(3, 3),
    fusion=Fusion.BROADCAST,
    doc="a where cond holds, else b (numpy broadcasting)",
    grad=_where_grad))


# ---- broadcast_to --------------------------------------------------------------------------
def _broadcast_to_infer(x, *, shape):
    try:
        ok = np.broadcast_shapes(x.shape, tuple(shape)) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"cannot broadcast {x} to {list(shape)}")
    return x.with_shape(shape)


register(OpDef(
    name="broadcast_to",
    infer=_broadcast_to_infer,
    compute=lambda x, shape: np.broadcast_to(x, shape).copy(),
    attrs=SHAPE,
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="numpy broadcast_to: repeat size-1 and missing leading axes",
    grad=lambda b, node, grads: [G.sum_to(b, grads[0], node.inputs[0].shape)]))


# ---- one_hot and scatter_add ---------------------------------------------------------------
def _one_hot_infer(idx, *, depth, axis, dtype):
    integer(idx, "one_hot indices")
    a = norm_axis(axis, idx.rank + 1, "one_hot axis")
    return TensorType((*idx.shape[:a], depth, *idx.shape[a:]), dtype)


def _one_hot(idx, *, depth, axis, dtype):
    if idx.size and (idx.min() < -depth or idx.max() >= depth):
        raise ShapeError(f"one_hot index out of range [-{depth}, {depth}): min {idx.min()}, "
                         f"max {idx.max()}")
    hot = (np.where(idx < 0, idx + depth, idx)[..., None] == np.arange(depth))
    return np.moveaxis(hot, -1, norm_axis(axis, idx.ndim + 1)).astype(DTYPES[dtype])


register(OpDef(
    name="one_hot",
    infer=_one_hot_infer,
    compute=_one_hot,
    attrs={"depth": Attr("int", check=lambda d: d > 0, rule="positive"),
           "axis": Attr("int", -1), **DTYPE},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="1 at each index, 0 elsewhere, along a new axis of size depth (ONNX OneHot); "
        "negative indices count from the end"))


def _scatter_parts(upd: TensorType, idx: TensorType, axis: int, size: int):
    integer(idx, "scatter_add indices")
    rank = upd.rank - idx.rank + 1
    if rank < 1:
        raise ShapeError(f"updates {upd} have fewer axes than the indices {idx}")
    a = norm_axis(axis, rank)
    if upd.shape[a:a + idx.rank] != idx.shape:
        raise ShapeError(f"updates {upd} do not hold the indices' shape {list(idx.shape)} at "
                         f"axis {a}")
    return a, (*upd.shape[:a], size, *upd.shape[a + idx.rank:])


def _scatter_add_infer(upd, idx, *, axis, size):
    floats(upd)
    return upd.with_shape(_scatter_parts(upd, idx, axis, size)[1])


def _scatter_add(upd, idx, *, axis, size):
    a, shape = _scatter_parts(TensorType.of(upd), TensorType.of(idx), axis, size)
    if idx.size and (idx.min() < -size or idx.max() >= size):
        raise ShapeError(f"scatter_add index out of range [-{size}, {size}): min {idx.min()}, "
                         f"max {idx.max()}")
    out = np.zeros(shape, upd.dtype)
    k = idx.ndim
    perm = [*range(a, a + k), *range(a), *range(a + k, upd.ndim)]
    rows = upd.transpose(perm).reshape(idx.size, *shape[:a], *shape[a + 1:])
    np.add.at(np.moveaxis(out, a, 0), np.where(idx < 0, idx + size, idx).ravel(), rows)
    return out


def _scatter_add_grad(b, node, grads):
    return [b.call("gather", grads[0], node.inputs[1], axis=node.attrs["axis"]), None]


register(OpDef(
    name="scatter_add",
    infer=_scatter_add_infer,
    compute=_scatter_add,
    attrs={"axis": Attr("int", 0), "size": Attr("int", check=lambda s: s >= 0,
                                                 rule=">= 0")},
    arity=(2, 2),
    fusion=Fusion.OPAQUE,
    doc="zeros with `size` entries along axis, then updates added at the indices "
        "(repeats accumulate): the adjoint of gather(data, indices, axis)",
    grad=_scatter_add_grad))


# ---- conv2d's gradient ---------------------------------------------------------------------
CONV = {**WINDOW, "groups": Attr("int", 1, lambda g: g > 0, "positive")}


def _out_sizes(h, w, k, stride, pad, dilation):
    """The conv/pool output sizes a [.., h, w] input allows: floor and ceil_mode rules."""
    return [{window_out(n, kk, s, lo, hi, d, ceil) for ceil in (False, True)}
            for n, kk, s, lo, hi, d in ((h, k[0], stride[0], pad[0], pad[2], dilation[0]),
                                        (w, k[1], stride[1], pad[1], pad[3], dilation[1]))]


def _grad_input_infer(dy, w, *, stride, pad, dilation, groups, shape):
    dtype = floats(dy, w)
    if dy.rank != 4 or w.rank != 4 or len(shape) != 4:
        raise ShapeError(f"conv2d_grad_input wants dy [N,O,OH,OW], weight [O,C/groups,KH,KW] "
                         f"and a 4-D input shape, got {dy}, {w}, {list(shape)}")
    n, c, h, wd = shape
    o, cg, kh, kw = w.shape
    if o % groups or cg * groups != c or dy.shape[:2] != (n, o):
        raise ShapeError(f"dy {dy} and weight {w} (groups={groups}) do not fit input "
                         f"{list(shape)}")
    oh, ow = _out_sizes(h, wd, (kh, kw), stride, pad, dilation)
    if dy.shape[2] not in oh or dy.shape[3] not in ow:
        raise ShapeError(f"dy {dy} is not the output size of a {kh}x{kw} window over "
                         f"{list(shape)}")
    return TensorType(tuple(shape), dtype)


def _conv_grad_input(dy, w, *, stride, pad, dilation, groups, shape):
    n, c, h, wd = shape
    o, cg, kh, kw = w.shape
    oh, ow = dy.shape[2:]
    (sh, sw), (dh, dw) = stride, dilation
    wg = w.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)
    cols = np.matmul(wg, dy.reshape(n, groups, o // groups, oh * ow))  # col2im's columns
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    hp = max(h + pad[0] + pad[2], (oh - 1) * sh + dh * (kh - 1) + 1)
    wp = max(wd + pad[1] + pad[3], (ow - 1) * sw + dw * (kw - 1) + 1)
    dxp = np.zeros((n, c, hp, wp), dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh,
                j * dw: j * dw + (ow - 1) * sw + 1: sw] += cols[:, :, i, j]
    return np.ascontiguousarray(dxp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd])


def _grad_input_grad(b, node, grads):
    dy, w = node.inputs
    (ddx,) = grads
    a = {k: node.attrs[k] for k in CONV}
    return [b.call("conv2d", ddx, w, **a),
            b.call("conv2d_grad_weight", ddx, dy, kernel=w.shape[2:], **a)]


register(OpDef(
    name="conv2d_grad_input",
    infer=_grad_input_infer,
    compute=_conv_grad_input,
    attrs={**CONV, **SHAPE},
    arity=(2, 2),
    fusion=Fusion.COMPLEX,
    doc="conv2d's gradient with respect to its input of `shape` (a transposed "
        "convolution): dy [N,O,OH,OW], weight [O,C/groups,KH,KW]",
    grad=_grad_input_grad))


def _grad_weight_infer(x, dy, *, stride, pad, dilation, groups, kernel):
    dtype = floats(x, dy)
    if x.rank != 4 or dy.rank != 4:
        raise ShapeError(f"conv2d_grad_weight wants x [N,C,H,W] and dy [N,O,OH,OW], got {x}, "
                         f"{dy}")
    n, c, h, wd = x.shape
    o = dy.shape[1]
    if c % groups or o % groups or dy.shape[0] != n:
        raise ShapeError(f"x {x} and dy {dy} do not fit groups={groups}")
    oh = window_out(h, kernel[0], stride[0], pad[0], pad[2], dilation[0])
    ow = window_out(wd, kernel[1], stride[1], pad[1], pad[3], dilation[1])
    if dy.shape[2:] != (oh, ow):
        raise ShapeError(f"dy {dy} is not conv2d's output for x {x}")
    return TensorType((o, c // groups, *kernel), dtype)


def _conv_grad_weight(x, dy, *, stride, pad, dilation, groups, kernel):
    n, c = x.shape[:2]
    o, oh, ow = dy.shape[1:]
    kh, kw = kernel
    cg, og = c // groups, o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    win = windows(xp, kernel, stride, dilation, (oh, ow))  # N C OH OW KH KW
    cols = win.reshape(n, groups, cg, oh, ow, kh, kw).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = cols.reshape(groups, n * oh * ow, cg * kh * kw)
    dyg = dy.reshape(n, groups, og, oh * ow).transpose(1, 2, 0, 3).reshape(groups, og, -1)
    return np.matmul(dyg, cols).reshape(o, cg, kh, kw)


def _grad_weight_grad(b, node, grads):
    x, dy = node.inputs
    (ddw,) = grads
    a = {k: node.attrs[k] for k in CONV}
    return [b.call("conv2d_grad_input", dy, ddw, shape=x.shape, **a),
            b.call("conv2d", x, ddw, **a)]


register(OpDef(
    name="conv2d_grad_weight",
    infer=_grad_weight_infer,
    compute=_conv_grad_weight,
    attrs={**CONV, "kernel": Attr("ints", check=pair[0], rule=pair[1])},
    arity=(2, 2),
    fusion=Fusion.COMPLEX,
    doc="conv2d's gradient with respect to its weight [O,C/groups,*kernel], from the "
        "input x and the output gradient dy",
    grad=_grad_weight_grad))


# ---- max_pool2d's gradient -----------------------------------------------------------------
def _max_pool_grad_infer(x, dy, *, kernel, stride, pad, dilation, ceil_mode):
    out = pool_infer(x, kernel=kernel, stride=stride, pad=pad, dilation=dilation,
                      ceil_mode=ceil_mode)
    if dy != out:
        raise ShapeError(f"dy must be max_pool2d's output type {out}, got {dy}")
    return x


def _max_pool_grad(x, dy, *, kernel, stride, pad, dilation, ceil_mode):
    win, widths = pool_windows(x, -np.inf, kernel, stride, pad, dilation, ceil_mode)
    n, c, oh, ow, kh, kw = win.shape
    v = win.reshape(n, c, oh, ow, kh * kw)
    # the first maximum among x's own elements wins (a NaN counts as the maximum, as numpy's
    # argmax): padding never does, not even in a tie with -inf (torch's rule)
    ones = np.ones((1, 1, *x.shape[2:]), x.dtype)
    real = pool_windows(ones, 0, kernel, stride, pad, dilation, ceil_mode)[0]
    real = real.reshape(1, 1, oh, ow, kh * kw) == 1
    nan = np.isnan(v)
    top = np.where(real, v, -np.inf).max(-1, keepdims=True)
    arg = np.where(nan.any(-1, keepdims=True), nan, real & (v == top)).argmax(-1)
    (sh, sw), (dh, dw) = stride, dilation
    dxp = np.zeros((n, c, x.shape[2] + sum(widths[2]), x.shape[3] + sum(widths[3])), x.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh,
                j * dw: j * dw + (ow - 1) * sw + 1: sw] += np.where(arg == i * kw + j, dy, 0)
    top, left = widths[2][0], widths[3][0]
    return np.ascontiguousarray(dxp[:, :, top:top + x.shape[2], left:left + x.shape[3]])


register(OpDef(
    name="max_pool2d_grad",
    infer=_max_pool_grad_infer,
    compute=_max_pool_grad,
    attrs=POOL,
    arity=(2, 2),
    fusion=Fusion.OPAQUE,
    doc="max_pool2d's gradient: each window's dy goes to its (first) maximum in x"))


# ---- dropout with a seed input -------------------------------------------------------------
def _dropout_seeded_infer(x, step, *, ratio, seed):
    integer(step, "dropout_seeded's step input")
    if step.rank != 0:
        raise ShapeError(f"dropout_seeded's step input must be a scalar, got {step}")
    return TensorType(x.shape, floats(x))


def _dropout_seeded(x, step, *, ratio, seed):
    if ratio == 0:
        return x.copy()
    rng = np.random.default_rng([seed % 2**64, int(step) % 2**64])
    keep = rng.random(x.shape) >= ratio
    return np.where(keep, x / x.dtype.type(1 - ratio), x.dtype.type(0)).astype(x.dtype)


def _dropout_seeded_grad(b, node, grads):
    return [b.call("dropout_seeded", grads[0], node.inputs[1], **node.attrs), None]


register(OpDef(
    name="dropout_seeded",
    infer=_dropout_seeded_infer,
    compute=_dropout_seeded,
    attrs={"ratio": Attr("float", 0.5, lambda p: 0 <= p < 1, "0 <= ratio < 1"),
           "seed": Attr("int", 0)},
    arity=(2, 2),
    fusion=Fusion.OPAQUE,
    doc="training-mode dropout whose mask is drawn from (the seed attribute, the scalar integer "
        "input): a training step feeds a fresh input per call; equal inputs give equal masks",
    grad=_dropout_seeded_grad))
