"""What the front ends' operator tables share: the table itself (op name -> the function that
imports it, registered by a decorator named after the op) and the operand helpers every
table's functions use. Operands are `ir.Value`s, or numpy arrays when known at import time."""

from __future__ import annotations

import numpy as np


class OpTable(dict):
    """Operator name -> import function."""

    def register(self, fn):
        """Decorator: `fn` imports the operator it is named after."""
        self[fn.__name__] = fn
        return fn

    def alias(self, name: str, fn) -> None:
        self[name] = fn


def rank(x) -> int:
    return len(x.shape)


def is_const(x) -> bool:
    """Known at import time (a numpy array), rather than computed at run time."""
    return isinstance(x, np.ndarray)


def norm_axis(a: int, r: int) -> int:
    return a + r if a < 0 else a


def operand_dtype(x) -> np.dtype:
    """The numpy dtype of an operand (a graph value or a constant)."""
    return x.dtype if isinstance(x, np.ndarray) else x.type.np_dtype


def along(b, x, axis: int, m: np.ndarray):
    """y[..., o, ...] = sum_i m[o, i] x[..., i, ...] along `axis`, built with `b.call`: a
    constant per-axis matrix (resampling, adaptive pooling and cumulative sums are
    separable)."""
    r = rank(x)
    w = np.ascontiguousarray(m, operand_dtype(x))
    if axis == r - 1:
        return b.call("linear", x, w)
    if axis == r - 2:
        return b.call("matmul", w, x)
    perm = [k for k in range(r) if k != axis] + [axis]
    y = b.call("linear", b.call("transpose", x, perm=perm), w)
    return b.call("transpose", y, perm=[int(v) for v in np.argsort(perm)])
