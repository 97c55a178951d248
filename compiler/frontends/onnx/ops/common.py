"""The ONNX operator table (`HANDLERS`: op type -> function) and the helpers its functions
share. See `elementwise.py` for what an operator function takes and returns."""

from __future__ import annotations

import numpy as np

from ...op_table import OpTable, is_const, norm_axis, rank  # noqa: F401  (shared helpers)

HANDLERS = OpTable()  # ONNX op -> its function
handler, alias = HANDLERS.register, HANDLERS.alias


def dtype(x) -> np.dtype:
    """The numpy dtype of an operand (a graph value or a constant)."""
    return x.dtype if isinstance(x, np.ndarray) else x.type.np_dtype


def like(x, value) -> np.ndarray:
    """A 0-d constant of x's dtype."""
    return np.asarray(value, dtype(x))


