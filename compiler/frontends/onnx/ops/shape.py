"""ONNX shape operators (Reshape, Slice, Pad, Gather, ...) for the operator table: each
becomes registry shape operators, or folds when its input is constant."""

from __future__ import annotations

import numpy as np

from ir import ShapeError

from ..builder import Builder, OnnxNode, Unsupported
from .common import handler, is_const, like, norm_axis, rank


# ---- shape operators -----------------------------------------------------------------------
@handler
def Reshape(b: Builder, n: OnnxNode, x, shape=None):
    target = list(n.get("shape")) if b.opset < 5 else b.ints(shape, "the target shape")
    if not n.get("allowzero", 0):  # 0 copies the input's dimension
        target = [x.shape[i] if d == 0 and i < rank(x) else d for i, d in enumerate(target)]
    return b.call("reshape", x, shape=target)


@handler
def Flatten(b: Builder, n: OnnxNode, x):
    return b.call("flatten", x, axis=norm_axis(n.get("axis", 1), rank(x)))


@handler
def Transpose(b: Builder, n: OnnxNode, x):
    perm = n.get("perm", list(range(rank(x)))[::-1])
    return x if list(perm) == list(range(rank(x))) else b.call("transpose", x, perm=perm)


@handler
def Squeeze(b: Builder, n: OnnxNode, x, axes=None):
    axes = n.get("axes") if b.opset < 13 else (None if axes is None else b.ints(axes))
    r = rank(x)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {norm_axis(a, r) for a in axes}
    if any(x.shape[a] != 1 for a in axes):
        raise ValueError(f"cannot squeeze axes {sorted(axes)} of shape {list(x.shape)}")
    return b.reshape(x, [d for i, d in enumerate(x.shape) if i not in axes])


@handler
def Unsqueeze(b: Builder, n: OnnxNode, x, axes=None):
    axes = n.get("axes") if b.opset < 13 else b.ints(axes, "the axes")
    r = rank(x) + len(axes)
    axes = sorted(norm_axis(a, r) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return b.reshape(x, shape)


@handler
def Concat(b: Builder, n: OnnxNode, *xs):
    xs = [x for x in xs if x is not None]
    return b.call("concat", *xs, axis=n.get("axis", 1 if b.opset < 4 else 0))


@handler
def Split(b: Builder, n: OnnxNode, x, split=None):
    axis = norm_axis(n.get("axis", 0), rank(x))
    size = x.shape[axis]
    sizes = n.get("split") if b.opset < 13 else (None if split is None else b.ints(split))
    if sizes is None:
        parts = n.get("num_outputs", len(n.outputs))
        chunk = -(-size // parts)
        sizes = [chunk] * (parts - 1) + [size - chunk * (parts - 1)]
    out = b.call("split", x, axis=axis, sizes=sizes)
    return out if isinstance(out, tuple) else (out,)


def onnx_slice(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    """ONNX's clamped (start, end) as a Python slice that picks the same elements."""
    start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return start, end if end >= 0 else -dim - 1  # -dim-1: "before element 0" in Python


@handler
def Slice(b: Builder, n: OnnxNode, x, starts=None, ends=None, axes=None, steps=None):
    r = rank(x)
    if b.opset < 10:
        starts, ends = n.get("starts"), n.get("ends")
        axes, steps = n.get("axes", list(range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = b.ints(starts, "starts"), b.ints(ends, "ends")
        axes = b.ints(axes, "axes") if axes is not None else list(range(len(starts)))
        steps = b.ints(steps, "steps") if steps is not None else [1] * len(starts)
    out_s, out_e, out_a, out_st = [], [], [], []
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = norm_axis(a, r)
        if st == 0:
            raise ValueError("slice step 0")
        s, e = onnx_slice(s, e, st, x.shape[a])
        if (s, e, st) != (0, x.shape[a], 1):
            out_s, out_e, out_a, out_st = [*out_s, s], [*out_e, e], [*out_a, a], [*out_st, st]
    if not out_s:
        return x
    return b.call("slice", x, starts=out_s, ends=out_e, axes=out_a, steps=out_st)


@handler
def Gather(b: Builder, n: OnnxNode, data, indices):
    return b.call("gather", data, indices, axis=n.get("axis", 0))


@handler
def GatherElements(b: Builder, n: OnnxNode, data, indices):
    """out[..., i_axis, ...] = data[..., indices[...], ...]: a one-hot mask over the axis
    picks one element per output, summed with zeros."""
    r = rank(data)
    axis = norm_axis(n.get("axis", 0), r)
    if is_const(data) and is_const(indices):
        idx = np.where(indices < 0, indices + data.shape[axis], indices)
        return np.take_alongaxis(data, idx, axis)
    cut = [k for k in range(r) if k != axis and indices.shape[k] < data.shape[k]]
    if cut:  # indices may be smaller than data off the axis
        data = b.call("slice", data, starts=[0] * len(cut),
                      ends=[indices.shape[k] for k in cut], axes=cut)
    hot = b.call("one_hot", indices, depth=data.shape[axis], axis=-1, dtype="bool")
    perm = [k for k in range(r) if k != axis] + [axis]
    moved = b.reshape(b.call("transpose", data, perm=perm) if perm != list(range(r)) else data,
                      [*[data.shape[k] if k != axis else 1 for k in range(r)],
                       data.shape[axis]])
    picked = b.call("where", hot, moved, like(data, 0))
    return b.call("reduce_sum", picked, axes=[-1], keepdims=False)


@handler
def Pad(b: Builder, n: OnnxNode, x, pads=None, value=None, axes=None):
    r = rank(x)
    if b.opset < 11:
        pads, fill = n.get("pads", n.get("paddings")), n.get("value", 0.0)
    else:
        pads = b.ints(pads, "pads")
        fill = 0.0 if value is None else float(b.const(value, "the pad value").reshape(-1)[0])
    if axes is not None:
        axes = [norm_axis(a, r) for a in b.ints(axes, "axes")]
        full = [0] * (2 * r)
        for k, a in enumerate(axes):
            full[a], full[a + r] = pads[k], pads[k + len(axes)]
        pads = full
    mode = n.get("mode", "constant")
    if not any(pads):
        return x
    if mode == "wrap":
        return _pad_wrap(b, x, pads)
    if mode not in ("constant", "reflect", "edge"):
        raise Unsupported(f"pad mode '{mode}'")
    return b.call("pad", x, pads=pads, mode=mode, value=fill)


def _pad_wrap(b: Builder, x, pads):
    r = rank(x)
    if any(p < 0 for p in pads):
        x = b.call("pad", x, pads=[min(p, 0) for p in pads])
        pads = [max(p, 0) for p in pads]
    for a in range(r):
        lo, hi, d = pads[a], pads[a + r], x.shape[a]
        if lo > d or hi > d:
            raise Unsupported("wrap padding wider than the axis")
        parts = []
        if lo:
            parts.append(b.call("slice", x, starts=[d - lo], ends=[d], axes=[a]))
        parts.append(x)
        if hi:
            parts.append(b.call("slice", x, starts=[0], ends=[hi], axes=[a]))
        if len(parts) > 1:
            x = b.call("concat", *parts, axis=a)
    return x


@handler
def DepthToSpace(b: Builder, n: OnnxNode, x):
    bs, (nb, c, h, w) = n.get("blocksize"), x.shape
    if n.get("mode", "DCR") == "DCR":
        y = b.reshape(x, (nb, bs, bs, c // bs**2, h, w))
        y = b.call("transpose", y, perm=(0, 3, 4, 1, 5, 2))
    else:  # CRD
        y = b.reshape(x, (nb, c // bs**2, bs, bs, h, w))
        y = b.call("transpose", y, perm=(0, 1, 4, 2, 5, 3))
    return b.reshape(y, (nb, c // bs**2, h * bs, w * bs))


@handler
def SpaceToDepth(b: Builder, n: OnnxNode, x):
    bs, (nb, c, h, w) = n.get("blocksize"), x.shape
    y = b.reshape(x, (nb, c, h // bs, bs, w // bs, bs))
    crd = n.get("mode", "DCR") == "CRD"
    y = b.call("transpose", y, perm=(0, 1, 3, 5, 2, 4) if crd else (0, 3, 5, 1, 2, 4))
    return b.reshape(y, (nb, c * bs * bs, h // bs, w // bs))


@handler
def Tile(b: Builder, n: OnnxNode, x, repeats):
    reps = b.ints(repeats, "repeats")
    if len(reps) != rank(x):
        raise ShapeError(f"{len(reps)} repeats for a rank-{rank(x)} input")
    out = [d * k for d, k in zip(x.shape, reps)]
    if is_const(x):
        b.sized(out, x.dtype)  # before numpy allocates it
        return np.tile(x, reps)
    if all(k == 1 for k in reps):
        return x
    # out[j*d + i] = x[i] on each axis: every axis d becomes a pair (1, d) broadcast to (k, d),
    # one node whatever the repeats (and the output's size checked like any other)
    pairs = [s for d in x.shape for s in (1, d)]
    wide = [s for d, k in zip(x.shape, reps) for s in (k, d)]
    return b.reshape(b.call("broadcast_to", b.reshape(x, pairs), shape=wide), out)


@handler
def Expand(b: Builder, n: OnnxNode, x, shape):
    out = tuple(np.broadcast_shapes(tuple(x.shape), tuple(b.ints(shape, "the shape"))))
    return x if out == tuple(x.shape) else b.call("broadcast_to", x, shape=out)


@handler
def Dropout(b: Builder, n: OnnxNode, x, ratio=None, training_mode=None):
    training = False
    if b.opset < 7:
        training = not n.get("is_test", 0)
    elif training_mode is not None:
        training = not is_const(training_mode) or bool(training_mode.reshape(-1)[0])
    if training:
        b.warn_training("dropout imported as the identity (inference)")
    return x, np.ones(x.shape, np.bool_)
