"""Iteration helpers: collapsing broadcast shapes to few dimensions, turning a flat outer
index into per-operand offsets, and vector loops with a scalar remainder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .builder import KBuilder


def contiguous_strides(shape: Sequence[int]) -> list[int]:
    """Element strides of a C-contiguous array."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> list[int]:
    """Element strides of a contiguous `shape` read at every index of `out_shape` (numpy
    broadcasting: 0 along broadcast axes)."""
    full = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    return [0 if d == 1 else s for d, s in zip(full, contiguous_strides(full))]


def collapse(shape: Sequence[int], strides: Sequence[Sequence[int]]):
    """Drop size-1 axes and merge neighbours that every operand walks contiguously.

    Returns (shape, strides per operand), at least one axis long."""
    keep = [d for d, n in enumerate(shape) if n != 1]
    dims = [shape[d] for d in keep]
    strd = [[s[d] for d in keep] for s in strides]
    i = len(dims) - 2
    while i >= 0:
        if all(s[i] == s[i + 1] * dims[i + 1] for s in strd):
            dims[i] *= dims[i + 1]
            for s in strd:
                s[i] = s[i + 1]
                del s[i + 1]
            del dims[i + 1]
        i -= 1
    if not dims:
        return [1], [[0] for _ in strides]
    return dims, strd


def offsets(b: KBuilder, flat, shape: Sequence[int], strides: Sequence[Sequence[int]]):
    """Per-operand element offsets of the multi-index `flat` has in row-major `shape`."""
    offs = [b.i64(0) for _ in strides]
    rem = flat
    for d in range(len(shape) - 1, -1, -1):
        n = shape[d]
        if n == 1:
            continue
        if d == 0:
            idx = rem
        else:
            idx = b.urem(rem, b.i64(n))
            rem = b.udiv(rem, b.i64(n))
        for j, s in enumerate(strides):
            if s[d]:
                offs[j] = b.add(offs[j], b.mul(idx, b.i64(s[d])))
    return offs


def vector_loop(b: KBuilder, start, stop, lanes: int, body: Callable) -> None:
    """body(i, width) over [start, stop): full vectors of `lanes`, then a scalar remainder."""
    if lanes == 1:
        with b.loop(start, stop, name="s") as i:
            body(i, 1)
        return
    n = b.sub(stop, start)
    vec_end = b.add(start, b.and_(n, b.i64(~(lanes - 1))))
    with b.loop(start, vec_end, lanes, name="v") as i:
        body(i, lanes)
    with b.loop(vec_end, stop, name="r") as i:
        body(i, 1)


def chunking(outer: int, inner: int, lanes: int, chunk: int = 16384) -> tuple[int, int]:
    """Split an inner extent into chunks (multiples of the vector width) so that a loop
    with a small outer extent still has enough work items to share between threads."""
    chunk = max(lanes, chunk // lanes * lanes)
    nchunks = max(1, -(-inner // chunk))
    return nchunks, min(chunk, inner) if nchunks == 1 else chunk


def prod(xs) -> int:
    return int(np.prod(xs, dtype=np.int64))


def nest(b: KBuilder, dims: Sequence[int], strides: Sequence[Sequence[int]], base,
         body: Callable) -> None:
    """Nested loops over `dims` calling body(offsets), offsets[j] = base[j] + sum(i_d *
    strides[j][d]); no loops at all for an empty `dims`."""
    if not dims:
        body(list(base))
        return
    with b.loop(0, dims[0], name="n") as i:
        inner = [b.add(o, b.mul(i, b.i64(s[0]))) if s[0] else o for o, s in zip(base, strides)]
        nest(b, dims[1:], [s[1:] for s in strides], inner, body)


def vreduce(b: KBuilder, start, stop, lanes: int, elem, identity, load: Callable,
            combine: Callable):
    """combine-reduction of load(i, width) over [start, stop): lane-wise vector partials,
    a fixed shuffle tree, then the scalar remainder. The order depends only on the length,
    never on threads."""
    from .builder import const, vec_type

    vt = vec_type(elem, lanes)
    vacc = b.var(vt, const(vt, identity), "vacc")
    sacc = b.var(elem, const(elem, identity), "sacc")

    def step(i, width):
        slot, t = (vacc, vt) if width > 1 else (sacc, elem)
        b.store(combine(b.load(slot, typ=t), load(i, width)), slot)

    vector_loop(b, start, stop, lanes, step)
    total = b.load(vacc, typ=vt)
    if lanes > 1:
        total = b.hreduce(total, combine)
    return combine(total, b.load(sacc, typ=elem))
