"""The ONNX operator table (`HANDLERS`: op type -> function) and the helpers its functions
share. See `elementwise.py` for what an operator function takes and returns."""

from __future__ import annotations

import numpy as np

HANDLERS: dict = {}


def handler(fn):
    """Register `fn` as the import of the ONNX operator it is named after."""
    HANDLERS[fn.__name__] = fn
    return fn


def alias(name: str, fn) -> None:
    HANDLERS[name] = fn


def dtype(x) -> np.dtype:
    """The numpy dtype of an operand (a graph value or a constant)."""
    return x.dtype if isinstance(x, np.ndarray) else x.type.np_dtype


def rank(x) -> int:
    return len(x.shape)


def like(x, value) -> np.ndarray:
    """A 0-d constant of x's dtype."""
    return np.asarray(value, dtype(x))


def is_const(x) -> bool:
    return isinstance(x, np.ndarray)


def norm_axis(a: int, r: int) -> int:
    return a + r if a < 0 else a
