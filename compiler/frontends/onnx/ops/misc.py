"""ONNX operators for the operator table that fit no other family: GroupNormalization,
RMSNormalization, GlobalLpPool, Swish, ThresholdedRelu and Shrink (built from registry
operators rather than from ONNX's function bodies, which take more nodes), Compress,
Unique, Det, TensorScatter (a KV-cache update), the bitwise operators and BitCast.

Compress with a constant condition is a gather of the kept indices; with a run-time
condition, like Unique's outputs, its shape depends on the values, so (as NonZero) it is
computed at import time when its inputs are constant and refused otherwise. Det runs up to
3x3.
"""

from __future__ import annotations

import numpy as np

from ir.tensor_type import dtype_name

from ..builder import Builder, OnnxNode, Unsupported, np_dtype, onnx_type_name, stored_dtype
from .common import HANDLERS, alias, dtype, handler, is_const, like, norm_axis, rank
from .vision import _cast_int


@handler
def GroupNormalization(b: Builder, n: OnnxNode, x, scale, bias):
    """layer_norm over each group of channels (x as [N, G, C/G * spatial]), then the
    per-channel scale and bias (per group before opset 21: repeated over its channels)."""
    groups = int(n.get("num_groups"))
    nb, c = x.shape[:2]
    if c % groups:
        raise ValueError(f"GroupNormalization of {c} channels in {groups} groups")
    grouped = b.reshape(x, (nb, groups, int(np.prod(x.shape[1:])) // groups))
    y = b.reshape(b.call("layer_norm", grouped, axis=2, eps=float(n.get("epsilon", 1e-5))),
                  x.shape)
    per_channel = (c, *[1] * (rank(x) - 2))
    params = []
    for p in (scale, bias):
        if p.shape[0] == groups and groups != c:  # opset 18: one value per group
            p = np.repeat(p, c // groups) if is_const(p) else b.reshape(
                b.call("broadcast_to", b.reshape(p, (groups, 1)), shape=[groups, c // groups]),
                (c,))
        params.append(b.reshape(p, per_channel))
    return b.call("add", b.call("mul", y, params[0]), params[1])


@handler
def RMSNormalization(b: Builder, n: OnnxNode, x, scale):
    """x / sqrt(mean of x^2 over the axes from `axis` on + epsilon), times the scale."""
    axes = list(range(norm_axis(n.get("axis", -1), rank(x)), rank(x)))
    ms = b.call("reduce_mean", b.call("mul", x, x), axes=axes, keepdims=True)
    rms = b.call("sqrt", b.call("add", ms, like(x, float(n.get("epsilon", 1e-5)))))
    return b.call("mul", b.call("div", x, rms), scale)


@handler
def Swish(b: Builder, n: OnnxNode, x):
    alpha = float(n.get("alpha", 1.0))
    gate = b.call("sigmoid", x if alpha == 1 else b.call("mul", x, like(x, alpha)))
    return b.call("mul", x, gate)


@handler
def ThresholdedRelu(b: Builder, n: OnnxNode, x):
    alpha = like(x, n.get("alpha", 1.0))
    return b.call("where", b.call("greater", x, alpha), x, like(x, 0))


@handler
def Shrink(b: Builder, n: OnnxNode, x):
    """x + bias below -lambd, x - bias above lambd, 0 between."""
    lambd, bias = n.get("lambd", 0.5), n.get("bias", 0.0)
    low = b.call("where", b.call("greater", like(x, -lambd), x),
                 b.call("add", x, like(x, bias)), like(x, 0))
    return b.call("where", b.call("greater", x, like(x, lambd)),
                  b.call("sub", x, like(x, bias)), low)


@handler
def GlobalLpPool(b: Builder, n: OnnxNode, x):
    p = float(n.get("p", 2))
    mag = b.call("mul", x, x) if p == 2 else b.call("pow", b.call("abs", x), like(x, p))
    total = b.call("reduce_sum", mag, axes=list(range(2, rank(x))), keepdims=True)
    return b.call("sqrt", total) if p == 2 else b.call("pow", total, like(x, 1 / p))


@handler
def Compress(b: Builder, n: OnnxNode, x, condition):
    cond = b.const(condition, "the condition (the output length depends on its values)")
    keep = np.flatnonzero(cond.reshape(-1)).astype(np.int64)
    axis = n.get("axis")
    if axis is None:
        x = b.reshape(x, (int(np.prod(x.shape)),))
        axis = 0
    axis = norm_axis(axis, rank(x))
    if keep.size and keep[-1] >= x.shape[axis]:
        raise ValueError(f"Compress condition selects index {keep[-1]} of an axis of length "
                         f"{x.shape[axis]}")
    if is_const(x):
        return np.take(x, keep, axis=axis)
    if not keep.size:
        raise Unsupported("Compress that keeps nothing (an empty tensor)")
    return b.call("gather", x, keep, axis=axis)


def unique(x: np.ndarray, axis, ordered: bool):
    """ONNX Unique's four outputs: the distinct values (slices along `axis`), the index of
    each one's first occurrence, each input's position among them, and their counts; in
    ascending order, or (ordered=False) in the order they first occur."""
    flat = x.reshape(-1) if axis is None else x
    y, first, inverse, counts = np.unique(flat, return_index=True, return_inverse=True,
                                          return_counts=True, axis=axis)
    if not ordered:
        order = np.argsort(first, kind="stable")
        y = np.take(y, order, axis=0 if axis is None else axis)
        first, counts = first[order], counts[order]
        inverse = np.argsort(order)[inverse.reshape(-1)]
    return (y, *(np.asarray(v, np.int64).reshape(-1) for v in (first, inverse, counts)))


@handler
def Unique(b: Builder, n: OnnxNode, x):
    x = b.const(x, "the input (the output length depends on its values)")
    axis = n.get("axis")
    axis = None if axis is None else norm_axis(axis, x.ndim)
    return unique(x, axis, bool(n.get("sorted", 1)))


def _bitwise(name: str, op: str):
    """One registry operator. Unsigned types arrive widened (uint8 as int32, ...): and, or
    and xor keep the zero high bits; not sets them, and narrowing the output back drops them."""
    def run(b: Builder, n: OnnxNode, *xs):
        return b.call(op, *xs)

    run.__name__ = name
    alias(name, run)


for _name, _op in {"BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or",
                   "BitwiseXor": "bitwise_xor", "BitwiseNot": "bitwise_not"}.items():
    _bitwise(_name, _op)


@handler
def BitCast(b: Builder, n: OnnxNode, x):
    """The bits of x read as type `to` (of the same size). Types the importer widens (uint8
    as int32, uint32 as int64, ...) are narrowed to their stored bits first: between
    integer types that is a wrap, a sign extension or a mask; float16 and the like are
    refused at run time."""
    to, stored = np_dtype(n.get("to")), stored_dtype(n.get("to"))
    src = b.stored.get(n.inputs[0], dtype(x))  # as the file stores it
    if to is None or stored.kind == "b" or stored.itemsize != src.itemsize:
        raise Unsupported(f"BitCast of {src} to {onnx_type_name(n.get('to'))}")
    if is_const(x):
        return x.astype(src).view(stored).astype(to)
    if src == dtype(x) and to.itemsize == stored.itemsize:  # (uint64 is int64's bits)
        return x if to == src else b.call("bitcast", x, dtype=dtype_name(to))
    if src.kind in "iub" and stored.kind in "iu":
        return _int_bits(b, x, 8 * stored.itemsize, stored.kind == "i", to)
    if src.kind in "iu" and stored.kind == "f" and to == stored:  # uint32 held in int64
        signed = np.dtype(f"i{stored.itemsize}")
        return b.call("bitcast", _int_bits(b, x, 8 * stored.itemsize, True, signed),
                      dtype=dtype_name(to))
    raise Unsupported(f"BitCast of {src} to {onnx_type_name(n.get('to'))} at run time")


def _int_bits(b: Builder, x, bits: int, signed: bool, to: np.dtype):
    """The low `bits` bits of integer x as a (signed or unsigned) `bits`-bit number, held in
    `to`: wrapped by the conversion, then sign-extended by two shifts or masked."""
    y = x if dtype(x) == to else b.call("cast", x, dtype=dtype_name(to))
    width = 8 * to.itemsize
    if bits == width:
        return y
    if not signed:
        return b.call("bitwise_and", y, np.asarray(2**bits - 1, to))
    up = np.asarray(width - bits, to)
    return b.call("bit_shift", b.call("bit_shift", y, up, direction="left"), up,
                  direction="right")


@handler
def Det(b: Builder, n: OnnxNode, m):
    """Of a constant: numpy's. At run time, of 1x1 to 3x3 matrices: the cofactor expansion
    along the first row (larger ones would need pivoting: refused)."""
    if is_const(m):
        return np.linalg.det(m).astype(m.dtype)
    k = m.shape[-1]
    if k > 3:
        raise Unsupported(f"the determinant of {k}x{k} matrices computed at run time "
                          "(Lamina has it up to 3x3)")
    batch = tuple(m.shape[:-2])
    r = len(m.shape)

    def at(i, j):
        e = b.call("slice", m, starts=[i, j], ends=[i + 1, j + 1], axes=[r - 2, r - 1])
        return b.reshape(e, batch)

    def det(rows, cols):
        if len(rows) == 1:
            return at(rows[0], cols[0])
        terms = [b.call("mul", at(rows[0], c), det(rows[1:], cols[:i] + cols[i + 1:]))
                 for i, c in enumerate(cols)]
        acc = terms[0]
        for i, t in enumerate(terms[1:], 1):
            acc = b.call("sub" if i % 2 else "add", acc, t)
        return acc

    return det(list(range(k)), list(range(k)))


@handler
def TensorScatter(b: Builder, n: OnnxNode, past, update, write_indices=None):
    """Cache position m of sample i takes update row m - write_indices[i] (modulo the cache
    length in circular mode) where that row exists, else keeps the past: a gather of the
    update's rows [N * S, rest] at per-position indices, then a where."""
    r = rank(past)
    a = norm_axis(n.get("axis", -2), r)
    if a == 0:
        raise ValueError("TensorScatter along the batch axis")
    nb, size, seq = past.shape[0], past.shape[a], update.shape[a]
    perm = [0, a, *[k for k in range(1, r) if k != a]]
    rest = [past.shape[k] for k in perm[2:]]
    moved_past = b.call("transpose", past, perm=perm)
    rows = b.reshape(b.call("transpose", update, perm=perm), (nb * seq, int(np.prod(rest))))
    start = np.zeros((nb, 1), np.int64) if write_indices is None else \
        b.reshape(_cast_int(b, write_indices), (nb, 1))
    src = b.call("sub", np.arange(size, dtype=np.int64).reshape(1, size), start)  # [N, size]
    if n.get("mode", "linear") == "circular":
        src = _wrap(b, n, src, size)
    inside = b.call("where", b.call("greater", np.asarray(0, np.int64), src), np.asarray(False),
                    b.call("greater", np.asarray(seq, np.int64), src))
    row = b.call("minimum", b.call("maximum", src, np.asarray(0, np.int64)),
                 np.asarray(seq - 1, np.int64))
    first = np.arange(nb, dtype=np.int64).reshape(nb, 1) * seq
    picked = b.reshape(b.call("gather", rows, b.call("add", first, row), axis=0),
                       (nb, size, *rest))
    keep = b.reshape(inside, (nb, size, *[1] * len(rest)))
    out = b.call("where", keep, picked, moved_past)
    return b.call("transpose", out, perm=[int(k) for k in np.argsort(perm)])


def _wrap(b: Builder, n: OnnxNode, x, size: int):
    """x mod size (the non-negative remainder) of int64 values, through float64 (exact below
    2**52)."""
    f = b.call("cast", x, dtype="f64")
    q = HANDLERS["Floor"](b, n, b.call("div", f, np.asarray(float(size))))
    return b.call("cast", b.call("sub", f, b.call("mul", q, np.asarray(float(size)))),
                  dtype="i64")
