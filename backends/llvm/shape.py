"""Shape operators as copies: reshape, flatten, transpose, concat, split, slice, pad.

Everything but pad is a strided copy (`copy_phase`): the destination's index space with the
source's strides for it (permuted for transpose, scaled by the step and shifted for slice,
offset into the output for concat and out of the input for split), collapsed to few axes.
The innermost axis is a vector loop when both sides are contiguous, a gather when only the
destination is, and scalar otherwise. reshape and flatten are plain contiguous copies.
A copy whose source already sits at its destination is left out (the memory plan stores a
concat's inputs in their slots and a view's output in its input's buffer, see
passes/plan_memory.py: `in_place` there is the same rule): such a concat, reshape, flatten
or transpose of unit axes emits no code at all.
pad reads per-axis source-index tables made at compile time with numpy's own np.pad on
index arrays, so reflect, edge and negative (cropping) pads follow numpy exactly.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llir

from ir.ops.shape import slices
from ir.ops.shape_rules import axis as norm_axis

from .builder import I32, KBuilder, const
from .kernel import Buf, Kernel
from .loops import chunking, collapse, contiguous_strides, offsets, prod, vector_loop
from .registry import lowering


def copy_phase(k: Kernel, shape, src: Buf, src_strides, src_off: int, dst: Buf,
               dst_strides, dst_off: int, which=None) -> None:
    """dst[dst_off + sum(i*dst_strides)] = src[src_off + sum(i*src_strides)] over `shape`."""
    if prod(shape) == 0:
        return
    dims, (ds, ss) = collapse(list(shape), [list(dst_strides), list(src_strides)])
    outer, inner = dims[:-1], dims[-1]
    lanes = k.lanes(src.dtype)
    vec = ds[-1] == 1 and ss[-1] == 1
    gather = ds[-1] == 1 and ss[-1] != 1 and abs(ss[-1]) * inner < 2**31
    nchunks, chunk = chunking(prod(outer), inner, lanes)
    el = src.elem

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            o, c = (item, None) if nchunks == 1 else (
                b.udiv(item, b.i64(nchunks)), b.urem(item, b.i64(nchunks)))
            do, so = offsets(b, o, outer, [ds[:-1], ss[:-1]])
            do, so = b.add(do, b.i64(dst_off)), b.add(so, b.i64(src_off))
            start = b.i64(0) if c is None else b.mul(c, b.i64(chunk))
            stop = b.i64(inner) if c is None else b.min_(b.add(start, b.i64(chunk)), inner)

            def step(i, width):
                if width == 1 or vec:
                    x = b.vload(src.ptr, b.add(so, b.mul(i, b.i64(ss[-1]))), el, width)
                else:
                    first = b.add(so, b.mul(i, b.i64(ss[-1])))
                    lane = llir.Constant(llir.VectorType(I32, width),
                                         [j * ss[-1] for j in range(width)])
                    x = b.gather(b.at(src.ptr, first, el), lane, el)
                b.vstore(x, dst.ptr, b.add(do, b.mul(i, b.i64(ds[-1]))))

            vector_loop(b, start, stop, lanes if (vec or gather) else 1, step)

    k.phase(prod(outer) * nchunks, body, bufs=[src, dst], cost=prod(shape), which=which)


def _strides(shape):
    return contiguous_strides(shape)


def _already_at(src: Buf, dst: Buf, offset: int = 0) -> bool:
    """Whether `src` lives in the arena exactly `offset` elements into `dst`'s storage."""
    return (src.where[:1] == dst.where[:1] == ("arena",)
            and src.where[1] == dst.where[1] + offset * src.type.np_dtype.itemsize)


@lowering("reshape", "flatten")
def lower_reshape(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    if not _already_at(x, out):
        copy_phase(k, [x.size], x, [1], 0, out, [1], 0)


@lowering("transpose")
def lower_transpose(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    moved = [p for p in k.attrs["perm"] if x.shape[p] != 1]
    if moved == sorted(moved) and _already_at(x, out):  # the same bytes in the same order
        return
    xs = _strides(x.shape)
    copy_phase(k, out.shape, x, [xs[p] for p in k.attrs["perm"]], 0, out,
               _strides(out.shape), 0)


@lowering("concat")
def lower_concat(k: Kernel) -> None:
    out = k.outputs[0]
    a = norm_axis(k.attrs["axis"], len(out.shape))
    os_ = _strides(out.shape)
    contiguous = prod(out.shape[:a]) == 1  # each input's slot is one range of the output
    at = 0
    for i, x in enumerate(k.inputs):
        if not (contiguous and _already_at(x, out, at * os_[a])):
            copy_phase(k, x.shape, x, _strides(x.shape), 0, out, os_, at * os_[a], which=i)
        at += x.shape[a]


@lowering("split")
def lower_split(k: Kernel) -> None:
    x = k.inputs[0]
    a = norm_axis(k.attrs["axis"], len(x.shape))
    xs = _strides(x.shape)
    at = 0
    for out in k.outputs:
        copy_phase(k, out.shape, x, xs, at * xs[a], out, _strides(out.shape), 0)
        at += out.shape[a]


@lowering("slice")
def lower_slice(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    a = k.attrs
    ranges = [s.indices(n) for s, n in
              zip(slices(x.shape, a["starts"], a["ends"], a["axes"], a["steps"]), x.shape)]
    xs = _strides(x.shape)
    start = sum(r[0] * st for r, st in zip(ranges, xs) if len(range(*r)))
    steps = [r[2] * st for r, st in zip(ranges, xs)]
    copy_phase(k, out.shape, x, steps, start, out, _strides(out.shape), 0)


@lowering("pad")
def lower_pad(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    a = k.attrs
    r = len(x.shape)
    if out.size == 0:
        return
    tables = [_source_indices(x.shape[d], a["pads"][d], a["pads"][d + r], a["mode"])
              for d in range(r)]
    starts = np.cumsum([0] + [len(t) for t in tables])[:-1]
    table = k.constant(np.concatenate(tables).astype(np.int64) if tables else
                       np.zeros(1, np.int64), "pad_index")
    xs = _strides(x.shape)
    value = np.asarray(a["value"], out.type.np_dtype).item()
    inner = out.shape[-1] if r else 1
    el = x.elem

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="o") as o:
            rem, src, inside = o, b.i64(0), llir.Constant(llir.IntType(1), 1)
            for d in range(r - 2, -1, -1):
                i = rem if d == 0 else b.urem(rem, b.i64(out.shape[d]))
                if d:
                    rem = b.udiv(rem, b.i64(out.shape[d]))
                s = b.vload(table.ptr, b.add(i, b.i64(int(starts[d]))), table.elem)
                inside = b.and_(inside, b.icmp_signed(">=", s, b.i64(0)))
                src = b.add(src, b.mul(s, b.i64(xs[d])))
            with b.loop(0, inner, name="j") as j:
                s = b.vload(table.ptr, b.add(j, b.i64(int(starts[r - 1]))), table.elem) \
                    if r else b.i64(0)
                ok = b.and_(inside, b.icmp_signed(">=", s, b.i64(0)))
                at = b.select(ok, b.add(src, s), b.i64(0))  # never read outside x
                v = b.vload(x.ptr, at, el) if x.size else const(el, value)
                b.vstore(b.select(ok, v, const(el, value)), out.ptr,
                         b.add(b.mul(o, b.i64(inner)), j))

    k.phase(max(1, out.size // inner), body, bufs=[x, out, table], cost=out.size * 4)


def _source_indices(size: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each output position along one axis, the source index, or -1 for the fill value
    (numpy's pad applied to the index array itself, after cropping negative pads)."""
    idx = np.arange(size)[max(-lo, 0): size - max(-hi, 0)]
    width = (max(lo, 0), max(hi, 0))
    if mode == "constant":
        return np.pad(idx, width, constant_values=-1)
    return np.pad(idx, width, mode=mode)
