"""Window operators the front ends share (the ONNX and torch importers' handlers and
compiler.functional), built with `b.call`: transposed convolution with any output padding,
and adaptive average and max pooling to any output size.

Transposed convolution is the registry's conv2d/conv3d_grad_input (the convolution's
gradient with respect to its input, whose weight layout [C_in, C_out/groups, *kernel] it
shares). That operator's output must be one a window count fits, so output padding of a
stride or more (torch allows up to max(stride, dilation) - 1) is absorbed first by the end
padding, and what is left is appended as zeros: no window reaches those cells.

Adaptive pooling, torch's windows: output i of an axis of length L pooled to O covers inputs
[floor(i*L/O), ceil((i+1)*L/O)), so windows may differ in length and overlap when O does
not divide L. Both poolings are separable: a window is a product of per-axis ranges, and
the mean (max) over a product is the mean (max) over one axis of the means (maxima) over
the other. Per axis:
- O divides L: reshape the axis into (O, L/O) and reduce the inner one;
- mean otherwise: a constant [O, L] averaging matrix along the axis (op_table.along);
- max otherwise: gather each window's indices into [O, K] (K the longest window), shorter
  windows pointing at a -inf cell appended to the axis, then reduce over K.
An output of one per axis is `global_avg_pool` (or one reduce_max) over every spatial axis.
"""

from __future__ import annotations

import numpy as np

from .op_table import along, rank


def conv_transpose(b, x, w, bias, stride, begins, ends, output_padding, dilation, groups):
    """x [N, C_in, *spatial] (2 or 3 spatial axes) -> [N, C_out, *out] with
    out = (in - 1) * stride - begins - ends + dilation * (kernel - 1) + 1 + output_padding."""
    k = len(stride)
    ends, extra, zeros = list(ends), list(output_padding), [0] * k
    for i in range(k):
        absorb = min(max(0, extra[i] - (stride[i] - 1)), ends[i])
        ends[i] -= absorb
        extra[i] -= absorb
        zeros[i] = max(0, extra[i] - (stride[i] - 1))
        extra[i] -= zeros[i]
    out = [(x.shape[2 + i] - 1) * stride[i] - begins[i] - ends[i]
           + dilation[i] * (w.shape[2 + i] - 1) + 1 + extra[i] for i in range(k)]
    channels = w.shape[1] * groups
    y = b.call("conv3d_grad_input" if k == 3 else "conv2d_grad_input", x, w,
               stride=list(stride), pad=[*begins, *ends], dilation=list(dilation),
               groups=groups, shape=(x.shape[0], channels, *out))
    if any(zeros):
        y = b.call("pad", y, pads=[0] * (k + 2) + [0, 0, *zeros])
    if bias is None:
        return y
    return b.call("add", y, b.call("reshape", bias, shape=(channels, *[1] * k)))


def windows(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive window [start, end) of each output position along one axis."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def averaging_matrix(size: int, out: int) -> np.ndarray:
    """Row i averages input window i."""
    m = np.zeros((out, size))
    for i, (lo, hi) in enumerate(windows(size, out)):
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_pool(b, x, sizes, kind: str):
    """x pooled over its last len(sizes) axes to `sizes` (kind "avg" or "max")."""
    r, k = rank(x), len(sizes)
    axes = list(range(r - k, r))
    if all(o == 1 for o in sizes) and any(x.shape[a] != 1 for a in axes):
        if kind == "avg" and k == r - 2:
            return b.call("global_avg_pool", x)
        return b.call("reduce_mean" if kind == "avg" else "reduce_max", x, axes=axes,
                      keepdims=True)
    for a, o in zip(axes, sizes):
        if x.shape[a] != o:
            x = _pool_axis(b, x, a, o, kind)
    return x


def _pool_axis(b, x, a: int, out: int, kind: str):
    size = x.shape[a]
    reduce = "reduce_mean" if kind == "avg" else "reduce_max"
    if size % out == 0:
        split = b.call("reshape", x, shape=(*x.shape[:a], out, size // out, *x.shape[a + 1:]))
        return b.call(reduce, split, axes=[a + 1])
    if kind == "avg":
        return along(b, x, a, averaging_matrix(size, out))
    spans = windows(size, out)
    longest = max(hi - lo for lo, hi in spans)
    index = np.full((out, longest), size, np.int64)  # `size`: the appended -inf cell
    for i, (lo, hi) in enumerate(spans):
        index[i, : hi - lo] = np.arange(lo, hi)
    pads = [0] * (2 * rank(x))
    pads[rank(x) + a] = 1
    padded = b.call("pad", x, pads=pads, value=-np.inf)
    return b.call("reduce_max", b.call("gather", padded, index, axis=a), axes=[a + 1])
