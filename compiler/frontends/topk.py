"""The k largest (or smallest) elements along an axis, composed of registry operators (the IR
has no sort). Shared by the ONNX importer's TopK and traced tensors' topk/sort/argsort: each
front end hands in its own way of recording an operator, `call(op, *inputs, **attrs)`
(the ONNX builder folds constant operands, the tracer records nodes).

Each element's place in the order is the number of elements that come before it: those
ahead of it, and those equal to it at a lower index (a stable order, lower indices first). A
one-hot of the place puts values and indices into the first k slots. NaN counts as larger than
everything, as torch orders it (first when largest, last when smallest). Quadratic in the
axis length: [..., n, n] comparisons. Gradients reach each picked element through a `where`.
"""

from __future__ import annotations

import numpy as np

from ir.tensor_type import DTYPES

TRUE, FALSE = np.asarray(True), np.asarray(False)


def topk(call, x, shape, dtype: str, k: int, axis: int, largest: bool = True):
    """(values, indices) of the k first elements of `x` (float, IR dtype `dtype`, `shape`)
    in the order along `axis` (non-negative), both in x's dtype: the caller casts."""
    r, n = len(shape), shape[axis]
    const = lambda v: np.asarray(v, DTYPES[dtype])
    perm = [a for a in range(r) if a != axis] + [axis]
    moved = x if perm == list(range(r)) else call("transpose", x, perm=perm)
    outer = [shape[a] for a in perm[:-1]]
    xi = call("reshape", moved, shape=(*outer, n, 1))  # element i down the rows
    xj = call("reshape", moved, shape=(*outer, 1, n))  # element j across
    ahead = _above(call, xj, xi) if largest else _above(call, xi, xj)
    tied = call("where", call("equal", xi, xj), TRUE,
                call("where", _isnan(call, xi), _isnan(call, xj), FALSE))
    lower = np.tri(n, n, -1, np.bool_)  # [i, j]: j < i
    before = call("where", ahead, TRUE, call("where", tied, lower, FALSE))
    place = call("reduce_sum", call("where", before, const(1), const(0)), axes=[-1],
                 keepdims=False)
    hot = call("one_hot", call("cast", place, dtype="i64"), depth=n, axis=-1, dtype="bool")
    if k < n:
        hot = call("slice", hot, starts=[0], ends=[k], axes=[r])  # [..., n_i, k]
    values = call("reduce_sum", call("where", hot, xi, const(0)), axes=[r - 1],
                  keepdims=False)
    iota = np.arange(n, dtype=DTYPES[dtype]).reshape(n, 1)
    index = call("reduce_sum", call("where", hot, iota, const(0)), axes=[r - 1],
                 keepdims=False)
    if perm == list(range(r)):
        return values, index
    inv = [int(a) for a in np.argsort(perm)]
    return call("transpose", values, perm=inv), call("transpose", index, perm=inv)


def _isnan(call, v):
    return call("where", call("equal", v, v), FALSE, TRUE)


def _above(call, a, b):
    """a comes before b in descending order: a > b, or a is NaN and b is not."""
    return call("where", call("greater", a, b), TRUE,
                call("where", _isnan(call, a), call("equal", b, b), FALSE))
