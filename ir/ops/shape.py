"""Shape operators: each output element reads one input element (TVM's injective ops)."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..tensor_type import TensorType
from . import grad_rules as G
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import axis as norm_axis
from .shape_rules import same_dtype


def _reshape_infer(x, *, shape):
    shape = list(shape)
    if shape.count(-1) > 1 or any(d < -1 for d in shape):
        raise ShapeError(f"reshape target {shape} may hold at most one -1 and no other negative")
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    if -1 in shape:
        if known == 0 or x.size % known:
            raise ShapeError(f"cannot reshape {x} to {shape}")
        shape[shape.index(-1)] = x.size // known
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ShapeError(f"cannot reshape {x} ({x.size} elements) to {shape}")
    return TensorType(tuple(shape), x.dtype)


def _reshape_grad(b, node, grads):
    return [G.reshape(b, grads[0], node.inputs[0].shape)]


register(OpDef(
    name="reshape",
    infer=_reshape_infer,
    compute=lambda x, shape: x.reshape(shape),
    attrs={"shape": Attr("ints")},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="same elements in row-major order, new shape (one -1 is inferred)",
    grad=_reshape_grad))


def _flatten_infer(x, *, axis):
    if not -x.rank <= axis <= x.rank:  # ONNX: axis in [-rank, rank], negative counts from rank
        raise ShapeError(f"flatten axis {axis} is out of range for rank {x.rank}")
    a = axis + x.rank if axis < 0 else axis
    lead = int(np.prod(x.shape[:a], dtype=np.int64))
    return TensorType((lead, int(np.prod(x.shape[a:], dtype=np.int64))), x.dtype)


register(OpDef(
    name="flatten",
    infer=_flatten_infer,
    compute=lambda x, axis: x.reshape(_flatten_infer(TensorType.of(x), axis=axis).shape),
    attrs={"axis": Attr("int", 1)},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="2-D view: axes before `axis` become rows, the rest columns",
    grad=_reshape_grad))


def _transpose_infer(x, *, perm):
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"perm {list(perm)} is not a permutation of the {x.rank} axes of {x}")
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype)


def _transpose_grad(b, node, grads):
    inverse = np.argsort(node.attrs["perm"]).tolist()
    return [b.call("transpose", grads[0], perm=inverse)]


register(OpDef(
    name="transpose",
    infer=_transpose_infer,
    compute=lambda x, perm: np.transpose(x, perm),
    attrs={"perm": Attr("ints")},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="permute axes",
    grad=_transpose_grad))


def _concat_infer(*xs, axis):
    dtype = same_dtype(*xs)
    rank = xs[0].rank
    a = norm_axis(axis, rank)
    for t in xs:
        if t.rank != rank or t.shape[:a] + t.shape[a + 1:] != xs[0].shape[:a] + xs[0].shape[a + 1:]:
            raise ShapeError(f"cannot concatenate {', '.join(map(str, xs))} along axis {axis}")
    shape = list(xs[0].shape)
    shape[a] = sum(t.shape[a] for t in xs)
    return TensorType(tuple(shape), dtype)


def _concat_grad(b, node, grads):
    a = norm_axis(node.attrs["axis"], len(node.output.shape))
    parts = b.call("split", grads[0], axis=a, sizes=[v.shape[a] for v in node.inputs])
    return list(parts) if isinstance(parts, tuple) else [parts]


register(OpDef(
    name="concat",
    infer=_concat_infer,
    compute=lambda *xs, axis: np.concatenate(xs, axis=axis),
    attrs={"axis": Attr("int")},
    arity=(1, None),
    fusion=Fusion.INJECTIVE,
    doc="join along an axis",
    grad=_concat_grad))


def _split_infer(x, *, axis, sizes):
    a = norm_axis(axis, x.rank)
    if sum(sizes) != x.shape[a]:
        raise ShapeError(f"split sizes {list(sizes)} do not add up to {x.shape[a]} (axis {axis} "
                         f"of {x})")
    return tuple(x.with_shape((*x.shape[:a], s, *x.shape[a + 1:])) for s in sizes)


register(OpDef(
    name="split",
    infer=_split_infer,
    compute=lambda x, axis, sizes: tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis)),
    attrs={"axis": Attr("int", 0),
           "sizes": Attr("ints", check=lambda v: len(v) > 0 and min(v) >= 0,
                         rule="one or more sizes >= 0")},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="cut into consecutive pieces along an axis",
    grad=lambda b, node, grads: [b.call("concat", *grads, axis=node.attrs["axis"])]))


def slices(shape, starts, ends, axes, steps):
    if not (len(starts) == len(ends) and (not axes or len(axes) == len(starts))
            and (not steps or len(steps) == len(starts))):
        raise ShapeError("slice starts, ends, axes and steps must have equal lengths")
    index = [slice(None)] * len(shape)
    for i, (s, e) in enumerate(zip(starts, ends)):
        if i >= len(shape) and not axes:
            raise ShapeError(f"slice has more ranges than the {len(shape)} axes")
        a = norm_axis(axes[i], len(shape)) if axes else i
        step = steps[i] if steps else 1
        if step == 0:
            raise ShapeError("slice step cannot be 0")
        index[a] = slice(s, e, step)  # not .indices(): its stop -1 would read as "last"
    return tuple(index)


def _slice_infer(x, *, starts, ends, axes, steps):
    index = slices(x.shape, starts, ends, axes, steps)
    return x.with_shape(tuple(len(range(*s.indices(d))) for s, d in zip(index, x.shape)))


def _pad_axis(b, v, a: int, begin: int, end: int):
    """`v` padded with zeros (negative: cropped) on axis `a` only."""
    if begin == end == 0:
        return v
    pads = [0] * (2 * len(v.shape))
    pads[a], pads[a + len(v.shape)] = begin, end
    return b.call("pad", v, pads=pads)


def _reverse(b, v, a: int, start: int, stop: int):
    """v[start:stop] along axis `a`, reversed (a slice with step -1, stop exclusive)."""
    return b.call("slice", v, starts=[stop - 1], ends=[start - 1 if start else -v.shape[a] - 1],
                  axes=[a], steps=[-1])


def _slice_grad(b, node, grads):
    """Per sliced axis: spread dy to every step-th position (reshape to [m, 1], pad to
    [m, step], reshape to [m * step]), then pad with zeros to the input's extent; a
    negative step is a positive one on the reversed axis."""
    x, dx = node.inputs[0], grads[0]
    if 0 in dx.shape:
        return [G.zeros_like(b, x)]
    for a, (sl, n) in enumerate(zip(slices(x.shape, **node.attrs), x.shape)):
        start, _, step = sl.indices(n)
        m = dx.shape[a]
        if (start, step, m) == (0, 1, n):
            continue
        first = start if step > 0 else n - 1 - start  # in reversed coordinates when step < 0
        if abs(step) > 1:
            shape = dx.shape
            dx = G.reshape(b, dx, (*shape[:a], m, 1, *shape[a + 1:]))
            dx = _pad_axis(b, dx, a + 1, 0, abs(step) - 1)
            dx = G.reshape(b, dx, (*shape[:a], m * abs(step), *shape[a + 1:]))
        dx = _pad_axis(b, dx, a, first, n - first - dx.shape[a])
        if step < 0:
            dx = _reverse(b, dx, a, 0, n)
    return [dx]


register(OpDef(
    name="slice",
    infer=_slice_infer,
    compute=lambda x, **a: x[slices(x.shape, **a)].copy(),
    attrs={"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints", ()),
           "steps": Attr("ints", ())},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="python slicing per axis (clamped as python clamps); axes default to 0, 1, ...",
    grad=_slice_grad))


def _pad_infer(x, *, pads, mode, value):
    if len(pads) != 2 * x.rank:
        raise ShapeError(f"pads needs {2 * x.rank} entries (begins, then ends) for {x}")
    shape = tuple(d + pads[i] + pads[i + x.rank] for i, d in enumerate(x.shape))
    if any(d < 0 for d in shape):
        raise ShapeError(f"negative pads {list(pads)} cut {x} below zero")
    for i, d in enumerate(x.shape):  # reflect and edge read what is left after cropping
        kept, grow = d + min(pads[i], 0) + min(pads[i + x.rank], 0), max(pads[i], pads[i + x.rank])
        if kept < 0:
            raise ShapeError(f"negative pads {list(pads)} crop more than axis {i} of {x} holds")
        if mode == "reflect" and 0 < grow >= kept:
            raise ShapeError(f"reflect padding {list(pads)} must be smaller than the axes of "
                             f"{x} (after cropping)")
        if mode == "edge" and grow > 0 and kept == 0:
            raise ShapeError(f"edge padding {list(pads)} of {x} extends an empty axis")
    return x.with_shape(shape)


def _pad(x, *, pads, mode, value):
    r = x.ndim
    crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[i + r], 0)) for i in range(r))
    width = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
    x = x[crop]
    if mode == "constant":
        return np.pad(x, width, constant_values=x.dtype.type(value))
    return np.pad(x, width, mode=mode)


def _pad_grad(b, node, grads):
    """Per axis: keep the centre, fold reflect/edge padding back onto the cells it copied,
    then undo cropping (negative pads) by padding with zeros."""
    x, dx = node.inputs[0], grads[0]
    pads, mode, r = node.attrs["pads"], node.attrs["mode"], len(x.shape)
    if mode == "constant":
        return [b.call("pad", dx, pads=[-p for p in pads])]
    for a in range(r):
        lo, hi = max(pads[a], 0), max(pads[a + r], 0)
        if not lo and not hi:
            continue
        n = dx.shape[a] - lo - hi  # the cropped input's extent
        centre = _pad_axis(b, dx, a, -lo, -hi)
        if lo and mode == "reflect":  # dx[0:lo] copied x[lo], ..., x[1]
            part = _pad_axis(b, _reverse(b, dx, a, 0, lo), a, 1, n - 1 - lo)
        elif lo:  # edge: dx[0:lo] copied x[0]
            part = b.call("reduce_sum", _pad_axis(b, dx, a, 0, -(n + hi)), axes=[a],
                          keepdims=True)
            part = _pad_axis(b, part, a, 0, n - 1)
        if lo:
            centre = b.call("add", centre, part)
        if hi and mode == "reflect":  # dx[lo+n:] copied x[n-2], ..., x[n-1-hi]
            part = _pad_axis(b, _reverse(b, dx, a, lo + n, lo + n + hi), a, n - 1 - hi, 1)
        elif hi:
            part = b.call("reduce_sum", _pad_axis(b, dx, a, -(lo + n), 0), axes=[a],
                          keepdims=True)
            part = _pad_axis(b, part, a, n - 1, 0)
        dx = b.call("add", centre, part) if hi else centre
    uncrop = [max(-p, 0) for p in pads]
    return [b.call("pad", dx, pads=uncrop) if any(uncrop) else dx]


register(OpDef(
    name="pad",
    infer=_pad_infer,
    compute=_pad,
    attrs={"pads": Attr("ints"), "value": Attr("float", 0.0),
           "mode": Attr("str", "constant", lambda m: m in ("constant", "reflect", "edge"),
                        "'constant', 'reflect' or 'edge'")},
    arity=(1, 1),
    fusion=Fusion.INJECTIVE,
    doc="pads = [begin_0, ..., begin_n, end_0, ..., end_n] as ONNX orders them; "
        "negative pads crop",
    grad=_pad_grad))
