"""ONNX shape operators (Reshape, Slice, Pad, Gather, ...) for the operator table: each
becomes registry shape operators, or folds when its input is constant."""

from __future__ import annotations

import numpy as np

from ir import ShapeError

from ..builder import Builder, OnnxNode, Unsupported
from .common import alias, dtype, handler, is_const, like, norm_axis, rank


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
        fill = 0.0 if value is None or not is_const(value) else float(value.reshape(-1)[0])
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
    y = b.call("pad", x, pads=pads, mode=mode, value=fill)
    if b.opset >= 11 and value is not None and not is_const(value) and mode == "constant":
        # a run-time fill: where a constant mask of the padding says so
        inside = b.call("pad", np.ones(x.shape, np.float32), pads=pads, value=0.0) > 0.5
        y = b.call("where", inside, y, b.reshape(value, ()))
    return y


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


# ---- scatters and GatherND: one-hot masks over the indexed axes -----------------------------
# The indices are only known at run time, so each becomes a one-hot mask (one_hot) over the
# axis it indexes; the updates are placed through the mask with where and summed (or maxed)
# over the update positions. Memory is (updates) x (indexed axis), fine for the index-sized
# scatters models use (positional tables, masks).
REDUCTIONS = ("none", "add", "mul", "max", "min")
FALSE = np.asarray(False)


def _combine(b: Builder, n: OnnxNode, data, hit, hot, upd, over: list[int], count: int):
    """data with the updates `upd` placed where the bool mask `hot` (updates' positions x
    data's positions, broadcasting) holds, reduced over the update axes `over`; `hit`: the
    data positions any update reaches."""
    red = n.get("reduction", "none")
    if red not in REDUCTIONS:
        raise Unsupported(f"reduction '{red}'")
    if red in ("none", "add"):
        placed = b.call("reduce_sum", b.call("where", hot, upd, like(data, 0)), axes=over)
        return b.call("where", hit, placed, data) if red == "none" else b.call("add", data,
                                                                               placed)
    if red == "mul":  # no product reduction: one factor per update position (few of them)
        if count > 64:
            raise Unsupported(f"reduction 'mul' over {count} update positions")
        a = norm_axis(over[0], rank(hot))
        out = data
        for k in range(count):
            one = {"starts": [k], "ends": [k + 1], "axes": [a]}
            factor = b.call("where", b.call("slice", hot, **one),
                            b.call("slice", upd, **one), like(data, 1))
            out = b.call("mul", out, b.reshape(factor, [d for i, d in enumerate(factor.shape)
                                                        if i != a]))
        return out
    fill = like(data, -np.inf if red == "max" else np.inf)
    best = b.call(f"reduce_{red}", b.call("where", hot, upd, fill), axes=over)
    return b.call("where", hit, b.call("maximum" if red == "max" else "minimum", data, best),
                  data)


@handler
def ScatterElements(b: Builder, n: OnnxNode, data, indices, updates):
    """data with updates written at `indices` along `axis`."""
    r = rank(data)
    axis = norm_axis(n.get("axis", 0), r)
    d = data.shape[axis]
    # the axis moved last: a mask [(other axes)..., D, m] of where each of the m updates lands
    perm = [k for k in range(r) if k != axis] + [axis]
    moved = [b.call("transpose", x, perm=perm) if perm != list(range(r)) else x
             for x in (indices, updates)]
    hot = b.call("one_hot", moved[0], depth=d, axis=-2, dtype="bool")  # [..., D, m]
    upd = b.reshape(moved[1], (*moved[1].shape[:-1], 1, moved[1].shape[-1]))
    hit = b.call("reduce_max", b.call("where", hot, like(data, 1), like(data, 0)), axes=[-1])
    rest = [indices.shape[k] for k in perm[:-1]]
    full = [data.shape[k] for k in perm[:-1]]
    moved_data = b.call("transpose", data, perm=perm) if perm != list(range(r)) else data
    if rest != full:  # indices may be smaller than data off the axis: work on that corner
        corner = b.call("slice", moved_data, starts=[0] * (r - 1), ends=rest,
                        axes=list(range(r - 1)))
    else:
        corner = moved_data
    out = _combine(b, n, corner, b.call("greater", hit, like(data, 0)), hot, upd, [-1],
                   moved[1].shape[-1])
    if rest != full:  # the rest of data is unchanged
        out = _paste(b, moved_data, out, rest)
    inv = [int(k) for k in np.argsort(perm)]
    return b.call("transpose", out, perm=inv) if perm != list(range(r)) else out


def _paste(b: Builder, whole, corner, sizes):
    """`whole` with its leading corner of `sizes` replaced by `corner`: a constant mask of
    the corner chooses between the two (the corner padded with zeros to the whole's shape)."""
    r = rank(whole)
    pads = [0] * r + [w - c for w, c in zip(whole.shape, [*sizes, *whole.shape[len(sizes):]])]
    mask = np.zeros(whole.shape, np.bool_)
    mask[tuple(slice(0, s) for s in sizes)] = True
    return b.call("where", mask, b.call("pad", corner, pads=pads), whole)


alias("Scatter", ScatterElements)  # its opset-9 name


def _nd_mask(b: Builder, indices, dims):
    """[M, *dims] bool: where each of the M index tuples (rows of `indices`, [M, k]) points."""
    m, k = indices.shape
    mask = None
    for j, d in enumerate(dims):
        col = b.reshape(b.call("slice", indices, starts=[j], ends=[j + 1], axes=[1])
                        if k > 1 else indices, (m,))
        hot = b.call("one_hot", col, depth=d, axis=-1, dtype="bool")
        hot = b.reshape(hot, (m, *[d if i == j else 1 for i in range(len(dims))]))
        mask = hot if mask is None else b.call("where", mask, hot, FALSE)
    return mask


@handler
def ScatterND(b: Builder, n: OnnxNode, data, indices, updates):
    """data with updates written at the index tuples of `indices` (last axis: a tuple)."""
    k, r = indices.shape[-1], rank(data)
    m = int(np.prod(indices.shape[:-1]))
    idx = b.reshape(indices, (m, k))
    mask = _nd_mask(b, idx, data.shape[:k])  # [M, d0..dk-1]
    mask = b.reshape(mask, (*mask.shape, *[1] * (r - k)))
    upd = b.reshape(updates, (m, *[1] * k, *data.shape[k:]))
    hit = b.call("reduce_max", b.call("where", mask, like(data, 1), like(data, 0)), axes=[0])
    hit = b.call("greater", hit, like(data, 0))
    return _combine(b, n, data, hit, mask, upd, [0], m)


@handler
def GatherND(b: Builder, n: OnnxNode, data, indices):
    """The slices of data at the index tuples of `indices`."""
    if n.get("batch_dims", 0) or dtype(data).kind != "f":
        return _gather_nd_batched(b, data, indices, int(n.get("batch_dims", 0)))
    k, r = indices.shape[-1], rank(data)
    m = int(np.prod(indices.shape[:-1]))
    mask = _nd_mask(b, b.reshape(indices, (m, k)), data.shape[:k])
    mask = b.reshape(mask, (*mask.shape, *[1] * (r - k)))
    whole = b.reshape(data, (1, *data.shape))
    picked = b.call("reduce_sum", b.call("where", mask, whole, like(data, 0)),
                    axes=list(range(1, k + 1)))
    return b.reshape(picked, (*indices.shape[:-1], *data.shape[k:]))


def _gather_nd_batched(b: Builder, data, indices, bd: int):
    """GatherND whose first `bd` axes are batch axes (data and indices share them), or of
    any dtype: each index tuple becomes one flat row number of data seen as [batch *
    indexed axes, rest] (negative entries counted from the end); one gather picks the rows."""
    k = indices.shape[-1]
    if not 0 <= bd < min(rank(data), rank(indices)) or bd + k > rank(data) or \
            tuple(indices.shape[:bd]) != tuple(data.shape[:bd]):
        raise ValueError(f"GatherND with batch_dims={bd}: data {list(data.shape)} and indices "
                         f"{list(indices.shape)} do not fit")
    batch, dims, rest = data.shape[:bd], data.shape[bd:bd + k], data.shape[bd + k:]
    nbatch, m = int(np.prod(batch)), int(np.prod(indices.shape[bd:-1]))
    if dtype(indices) != np.int64:
        indices = indices.astype(np.int64) if is_const(indices) else \
            b.call("cast", indices, dtype="i64")
    idx = b.reshape(indices, (nbatch, m, k))
    strides = [int(np.prod(dims[j + 1:])) for j in range(k)]
    flat = (np.arange(nbatch, dtype=np.int64) * int(np.prod(dims))).reshape(nbatch, 1)
    for j, d in enumerate(dims):
        col = b.reshape(b.call("slice", idx, starts=[j], ends=[j + 1], axes=[2]), (nbatch, m))
        col = b.call("where", b.call("greater", np.asarray(0, np.int64), col),
                     b.call("add", col, np.asarray(d, np.int64)), col)
        flat = b.call("add", flat, b.call("mul", col, np.asarray(strides[j], np.int64)))
    rows = b.reshape(data, (nbatch * int(np.prod(dims)), *rest))
    picked = b.call("gather", rows, flat, axis=0)
    return b.reshape(picked, (*indices.shape[:-1], *rest))


@handler
def ReverseSequence(b: Builder, n: OnnxNode, x, lens):
    """Each batch entry's first lens[i] steps reversed: per entry, a gather along the time
    axis with constant indices, the entries concatenated again."""
    lens = b.ints(lens, "sequence_lens")
    ba, ta = n.get("batch_axis", 1), n.get("time_axis", 0)
    steps = x.shape[ta]
    parts = []
    for i, k in enumerate(lens):
        if not 0 <= k <= steps:
            raise ValueError(f"sequence length {k} for {steps} steps")
        entry = b.call("slice", x, starts=[i], ends=[i + 1], axes=[ba])
        order = np.asarray([*range(k - 1, -1, -1), *range(k, steps)], np.int64)
        parts.append(b.call("gather", entry, order, axis=ta))
    return parts[0] if len(parts) == 1 else b.call("concat", *parts, axis=ba)
