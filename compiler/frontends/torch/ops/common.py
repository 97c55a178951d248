"""The ATen operator table (`HANDLERS`: op name -> function) and the helpers its functions
share.

An operator function is named like the Core ATen operator it imports, without namespace
and overload (`convolution`, `_native_batch_norm_legit_no_training`), and takes the Builder,
the node, then the operator's arguments in its schema's order with its schema's defaults:

    @handler
    def leaky_relu(b: Builder, n: TorchNode, x, negative_slope=0.01):
        return b.call("leaky_relu", x, alpha=float(negative_slope))

Tensor arguments arrive as `ir.Value`s, or numpy arrays where they are known at import
time (parameters, buffers, and whatever is computed only from them); other arguments as
Python values (numbers, lists, numpy dtypes for torch dtypes). It returns what the
operator returns (a tuple for several outputs, None for an output Lamina does not build),
and raises `Unsupported("why")` for a case Lamina lacks: the importer collects every such
node into one error.
"""

from __future__ import annotations

import numpy as np

from ...op_table import OpTable, is_const, norm_axis, rank
from ..builder import Builder, TorchNode, Unsupported, dtype_of

HANDLERS = OpTable()  # ATen op -> its function
handler, alias = HANDLERS.register, HANDLERS.alias


def is_tensor(x) -> bool:
    return hasattr(x, "shape") and not isinstance(x, (int, float, bool))


def promote(*xs) -> np.dtype:
    """The dtype torch computes in for these operands: tensors with dimensions decide,
    0-d tensors and Python numbers only raise the kind (bool < int < float)."""
    dims = [dtype_of(x) for x in xs if is_tensor(x) and rank(x) > 0]
    zero = [dtype_of(x) for x in xs if is_tensor(x) and rank(x) == 0]
    nums = [x for x in xs if isinstance(x, (bool, int, float)) and not is_tensor(x)]
    base = dims or zero
    dt = np.result_type(*base) if base else None
    kind = max((_kind(np.dtype(d)) for d in zero + [np.asarray(v).dtype for v in nums]),
               default=0)
    if dt is None:
        return np.dtype(np.float32) if kind == 2 else np.dtype(np.int64) if kind == 1 \
            else np.dtype(np.bool_)
    if _kind(dt) < kind:  # an int tensor and a float scalar compute in float32
        return np.dtype(np.float32) if kind == 2 else np.dtype(np.int64)
    return dt


def _kind(dt: np.dtype) -> int:
    return 2 if dt.kind == "f" else 1 if dt.kind in "iu" else 0


def operand(b: Builder, x, dtype):
    """A tensor or Python number as an operand of `dtype`."""
    if is_tensor(x):
        return b.cast(x, dtype)
    return np.asarray(x, dtype)


def out_dtype(n: TorchNode, fallback):
    dt = n.out_dtypes[0] if n.out_dtypes else None
    return dt if dt is not None else fallback


def ints(v, k: int | None = None) -> list[int]:
    """An int or list of ints as a list (of length k, repeating a single value)."""
    v = [int(v)] if isinstance(v, (int, np.integer)) else [int(e) for e in v]
    if k is not None and len(v) == 1:
        v = v * k
    return v


__all__ = ["HANDLERS", "Builder", "TorchNode", "Unsupported", "alias", "dtype_of", "handler",
           "ints", "is_const", "is_tensor", "norm_axis", "operand", "out_dtype", "promote",
           "rank"]
