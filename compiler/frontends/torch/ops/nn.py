"""Neural-network ATen operators: matrix products, convolution (1-D, 2-D and 3-D, transposed
too), pooling (adaptive included), normalisation, upsampling, and reductions.

A linear layer reaches the exported program as `addmm(bias, x, permute(weight, [1, 0]))`;
the permuted weight is remembered (Builder.transposed), so it becomes registry `linear`
with the layer's own weight, under its state_dict name."""

from __future__ import annotations

import math

import numpy as np

from ...op_table import along
from ...windows import adaptive_pool, conv_transpose
from .common import (
    Builder,
    TorchNode,
    Unsupported,
    alias,
    dtype_of,
    handler,
    ints,
    is_const,
    norm_axis,
    rank,
)


# ---- matrix products -------------------------------------------------------------------------
def _linear(b: Builder, x, w, bias=None):
    """x @ w: registry linear (weight [out, in]) when w is a constant, matmul otherwise."""
    if is_const(w) and w.ndim == 2 and rank(x) >= 1:
        weight = b.transposed.get(id(w))
        if weight is None:
            weight = b.derive(np.ascontiguousarray(w.T), w)
        if bias is not None and tuple(bias.shape) == (weight.shape[0],):
            return b.call("linear", x, weight, bias)
        y = b.call("linear", x, weight)
    else:
        y = b.call("matmul", x, w)
    return y if bias is None else b.call("add", y, bias)


def _scale(b: Builder, x, s):
    return x if s == 1 else b.call("mul", x, np.asarray(s, dtype_of(x)))


@handler
def addmm(b: Builder, n: TorchNode, bias, x, w, beta=1, alpha=1):
    if alpha != 1:
        return b.call("add", _scale(b, bias, beta), _scale(b, _linear(b, x, w), alpha))
    return _linear(b, x, w, None if beta == 0 else _scale(b, bias, beta))


@handler
def mm(b: Builder, n: TorchNode, x, w):
    return _linear(b, x, w)


@handler
def bmm(b: Builder, n: TorchNode, x, y):
    return b.call("matmul", x, y)


alias("matmul", bmm)


# ---- convolution -----------------------------------------------------------------------------
def _to_2d(b: Builder, x, k: int):
    """[N, C, L] as [N, C, 1, L] for a 1-D window operator; 2-D and 3-D inputs pass through."""
    if k != 1:
        return x
    return b.reshape(x, (*x.shape[:2], 1, x.shape[2]))


def _from_2d(b: Builder, y, k: int):
    return y if k != 1 else b.reshape(y, (*y.shape[:2], y.shape[3]))


def _spatial(x, what: str) -> int:
    if rank(x) not in (3, 4, 5):
        raise Unsupported(f"{rank(x) - 2}-D {what} (Lamina has 1-D, 2-D and 3-D)")
    return rank(x) - 2


def _op(name: str, k: int) -> str:
    """The registry's operator for `k` spatial axes (1-D runs as 2-D over a unit height)."""
    return name.replace("2d", "3d") if k == 3 else name


@handler
def convolution(b: Builder, n: TorchNode, x, w, bias, stride, padding, dilation, transposed,
                output_padding, groups):
    k = _spatial(x, "convolution")
    s, p, d = ints(stride, k), ints(padding, k), ints(dilation, k)
    if k == 1:
        s, p, d = [1, *s], [0, *p], [1, *d]
    x, w = _to_2d(b, x, k), _to_2d(b, w, k)
    if not transposed:
        y = b.call(_op("conv2d", k), x, w, *([] if bias is None else [bias]), stride=s,
                   pad=[*p, *p], dilation=d, groups=int(groups))
        return _from_2d(b, y, k)
    op = ints(output_padding, k)
    op = [0, *op] if k == 1 else op
    y = conv_transpose(b, x, w, bias, s, p, p, op, d, int(groups))  # see frontends/windows.py
    return _from_2d(b, y, k)


# ---- pooling ---------------------------------------------------------------------------------
def _window(kernel_size, stride, padding, dilation, k):
    kernel = ints(kernel_size, k)
    stride = ints(stride, k) if stride else kernel  # an empty stride is the kernel
    pad, dil = ints(padding, k), ints(dilation, k)
    if k == 1:
        kernel, stride, pad, dil = [1, *kernel], [1, *stride], [0, *pad], [1, *dil]
    return kernel, stride, [*pad, *pad], dil


@handler
def max_pool2d_with_indices(b: Builder, n: TorchNode, x, kernel_size, stride=(), padding=0,
                            dilation=1, ceil_mode=False):
    k = _spatial(x, "pooling")
    kernel, s, pad, d = _window(kernel_size, stride, padding, dilation, k)
    y = b.call(_op("max_pool2d", k), _to_2d(b, x, k), kernel=kernel, stride=s, pad=pad, dilation=d,
               ceil_mode=bool(ceil_mode))
    return _from_2d(b, y, k), None  # the indices are not built: a read of them is reported


@handler
def max_pool2d(b: Builder, n: TorchNode, x, kernel_size, stride=(), padding=0, dilation=1,
               ceil_mode=False):
    return max_pool2d_with_indices(b, n, x, kernel_size, stride, padding, dilation,
                                   ceil_mode)[0]


@handler
def avg_pool2d(b: Builder, n: TorchNode, x, kernel_size, stride=(), padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    if divisor_override is not None:
        raise Unsupported("avg_pool2d with divisor_override")
    k = _spatial(x, "pooling")
    kernel, s, pad, _ = _window(kernel_size, stride, padding, 1, k)
    y = b.call(_op("avg_pool2d", k), _to_2d(b, x, k), kernel=kernel, stride=s, pad=pad,
               ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad))
    return _from_2d(b, y, k)


alias("avg_pool1d", avg_pool2d)
alias("max_pool3d_with_indices", max_pool2d_with_indices)
alias("max_pool3d", max_pool2d)
alias("avg_pool3d", avg_pool2d)


def _adaptive(k: int, kind: str):
    """aten's adaptive pools over the last k axes, torch's windows for any output size (see
    frontends/adaptive.py); the max pools' indices are not built."""

    def fn(b: Builder, n: TorchNode, x, output_size):
        y = adaptive_pool(b, x, ints(output_size, k), kind)
        return y if kind == "avg" else (y, None)

    return fn


for _k in (1, 2, 3):
    alias(f"_adaptive_avg_pool{_k}d", _adaptive(_k, "avg"))
    alias(f"adaptive_max_pool{_k}d", _adaptive(_k, "max"))


# ---- upsampling ------------------------------------------------------------------------------
def _out_sizes(x, output_size, scale_factors):
    spatial = x.shape[2:]
    if output_size is not None:
        return ints(output_size), [None] * len(spatial)
    scales = [float(s) for s in scale_factors]
    return [math.floor(size * s) for size, s in zip(spatial, scales)], scales


def _coordinate_scale(size: int, out: int, scale, align_corners: bool) -> float:
    """torch's area_pixel_compute_scale: input step per output step."""
    if align_corners:
        return (size - 1) / (out - 1) if out > 1 else 0.0
    return 1.0 / scale if scale else size / out


def _nearest(size: int, out: int, scale) -> np.ndarray:
    step = np.float32(_coordinate_scale(size, out, scale, False))
    src = np.floor(np.arange(out, dtype=np.float32) * step).astype(np.int64)
    return np.minimum(src, size - 1)


def _bilinear_matrix(size: int, out: int, scale, align_corners: bool) -> np.ndarray:
    step = _coordinate_scale(size, out, scale, align_corners)
    dst = np.arange(out, dtype=np.float64)
    src = dst * step if align_corners else np.maximum((dst + 0.5) * step - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), size - 1)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    m = np.zeros((out, size))
    np.add.at(m, (np.arange(out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(out), hi), frac)
    return m


def _upsample(b: Builder, x, output_size, scale_factors, align_corners, mode: str):
    outs, scales = _out_sizes(x, output_size, scale_factors)
    y = x
    for k, (size, out, scale) in enumerate(zip(x.shape[2:], outs, scales)):
        axis = 2 + k
        if size == out and scale in (None, 1.0):
            continue
        if mode == "nearest":
            y = b.call("gather", y, _nearest(size, out, scale), axis=axis)
        else:
            y = along(b, y, axis, _bilinear_matrix(size, out, scale, align_corners))
    return y


@handler
def upsample_nearest2d(b: Builder, n: TorchNode, x, output_size=None, scales_h=None,
                       scales_w=None):
    if n.overload == "vec":  # (input, output_size, scale_factors)
        return _upsample(b, x, output_size, scales_h, False, "nearest")
    scales = None if scales_h is None else [scales_h, scales_w]
    return _upsample(b, x, output_size, scales, False, "nearest")


alias("upsample_nearest1d", upsample_nearest2d)


@handler
def upsample_bilinear2d(b: Builder, n: TorchNode, x, output_size, align_corners, scales_h=None,
                        scales_w=None):
    if n.overload == "vec":  # (input, output_size, align_corners, scale_factors)
        return _upsample(b, x, output_size, scales_h, align_corners, "linear")
    scales = None if scales_h is None else [scales_h, scales_w]
    return _upsample(b, x, output_size, scales, align_corners, "linear")


alias("upsample_linear1d", upsample_bilinear2d)


# ---- normalisation ---------------------------------------------------------------------------
def _channels(x, p, fill: float):
    return p if p is not None else np.full((x.shape[1],), fill, dtype_of(x))


@handler
def _native_batch_norm_legit_no_training(b: Builder, n: TorchNode, x, weight, bias,
                                         running_mean, running_var, momentum, eps):
    y = b.call("batch_norm", x, _channels(x, weight, 1.0), _channels(x, bias, 0.0),
               running_mean, running_var, eps=float(eps))
    return y, None, None  # the saved statistics are not built: a read of them is reported


@handler
def native_batch_norm(b: Builder, n: TorchNode, x, weight, bias, running_mean, running_var,
                      training, momentum, eps):
    if training or running_mean is None:
        raise Unsupported("batch norm with batch statistics (training mode)")
    return _native_batch_norm_legit_no_training(b, n, x, weight, bias, running_mean,
                                                running_var, momentum, eps)


@handler
def _native_batch_norm_legit(b: Builder, n: TorchNode, *args):
    raise Unsupported("batch norm with batch statistics (training mode)")


alias("_native_batch_norm_legit_functional", _native_batch_norm_legit)


@handler
def native_layer_norm(b: Builder, n: TorchNode, x, normalized_shape, weight, bias, eps):
    axis = rank(x) - len(normalized_shape)
    norm = tuple(x.shape[axis:])
    if weight is None and bias is not None:
        weight = np.ones(norm, dtype_of(x))
    params = [p for p in (weight, bias) if p is not None]
    return b.call("layer_norm", x, *params, axis=axis, eps=float(eps)), None, None


@handler
def native_group_norm(b: Builder, n: TorchNode, x, weight, bias, N, C, HxW, group, eps):
    """Normalise each group of channels: a layer norm over [C/group * spatial], then the
    per-channel scale and shift."""
    shape = tuple(x.shape)
    y = b.reshape(x, (shape[0], int(group), math.prod(shape[1:]) // group))
    y = b.reshape(b.call("layer_norm", y, axis=2, eps=float(eps)), shape)
    per_channel = (shape[1], *[1] * (len(shape) - 2))
    if weight is not None:
        y = b.call("mul", y, b.reshape(weight, per_channel))
    if bias is not None:
        y = b.call("add", y, b.reshape(bias, per_channel))
    return y, None, None


# ---- reductions ------------------------------------------------------------------------------
def _axes(x, dim) -> list[int]:
    if dim is None or (not isinstance(dim, int) and len(dim) == 0):
        return list(range(rank(x)))
    return sorted(norm_axis(int(d), rank(x)) for d in ints(dim))


@handler
def mean(b: Builder, n: TorchNode, x, dim=None, keepdim=False, dtype=None):
    if n.overload == "default":  # mean(x, dtype)
        dim, keepdim, dtype = None, False, dim
    x = b.cast(x, dtype) if dtype is not None else x
    axes = _axes(x, dim)
    if rank(x) == 4 and axes == [2, 3]:  # what the backends know as global pooling
        y = b.call("global_avg_pool", x)
        return y if keepdim else b.reshape(y, x.shape[:2])
    return b.call("reduce_mean", x, axes=axes, keepdims=bool(keepdim))


def sum_(b: Builder, n: TorchNode, x, dim=None, keepdim=False, dtype=None):
    if n.overload == "default":
        dim, keepdim, dtype = None, False, dim
    if dtype is None and dtype_of(x).kind in "biu":
        dtype = np.int64  # torch sums integers and bools as int64
    x = b.cast(x, dtype) if dtype is not None else x
    return b.call("reduce_sum", x, axes=_axes(x, dim), keepdims=bool(keepdim))


alias("sum", sum_)  # the names below are Python's


def _extreme(op: str):
    def fn(b: Builder, n: TorchNode, x, dim=None, keepdim=False):
        if n.overload == "dim":  # values and indices
            return b.call(op, x, axes=_axes(x, dim), keepdims=bool(keepdim)), None
        return b.call(op, x, axes=_axes(x, dim), keepdims=bool(keepdim))

    return fn


alias("amax", _extreme("reduce_max"))
alias("amin", _extreme("reduce_min"))
alias("max", _extreme("reduce_max"))
alias("min", _extreme("reduce_min"))


def any_(b: Builder, n: TorchNode, x, dim=None, keepdim=False):
    flag = x if dtype_of(x) == np.bool_ else b.call("equal", x, np.asarray(0, dtype_of(x)))
    if dtype_of(x) != np.bool_:
        flag = b.call("equal", flag, np.asarray(False))
    count = b.call("reduce_max", b.cast(flag, np.float32), axes=_axes(x, dim),
                   keepdims=bool(keepdim))
    return b.call("greater", count, np.asarray(0, np.float32))


alias("any", any_)


@handler
def var(b: Builder, n: TorchNode, x, dim=None, correction=None, keepdim=False):
    axes = _axes(x, dim)
    count = math.prod(x.shape[a] for a in axes)
    c = 1 if correction is None else float(correction)
    avg = b.call("reduce_mean", x, axes=axes, keepdims=True)
    diff = b.call("sub", x, avg)
    total = b.call("reduce_sum", b.call("mul", diff, diff), axes=axes, keepdims=bool(keepdim))
    return b.call("div", total, np.asarray(max(count - c, 0), dtype_of(x)))
