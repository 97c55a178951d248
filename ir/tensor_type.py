"""Tensor types: a shape and a dtype, mandatory on every value."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ShapeError

# IR dtype name -> numpy dtype. The short names are what the text format prints.
DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "bool": np.dtype(np.bool_),
}
_NAMES = {v: k for k, v in DTYPES.items()}
FLOATS = ("f32", "f64")
MAX_DIM = 2**48  # bound on a dimension and an element count: byte sizes stay far from 2**63
INTS = ("i32", "i64")


def dtype_name(dtype) -> str:
    """The IR name of a numpy dtype, or ShapeError if the IR has no such type."""
    try:
        return _NAMES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise ShapeError(f"unsupported dtype {dtype!r}; supported: {', '.join(DTYPES)}") from None


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str = "f32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPES:
            raise ShapeError(f"unsupported dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        if any(d < 0 for d in self.shape):
            raise ShapeError(f"negative dimension in shape {list(self.shape)}")
        # sizes and byte offsets are int64 everywhere below (numpy, the LLVM backend)
        if any(d >= MAX_DIM for d in self.shape) or math.prod(self.shape) >= MAX_DIM:
            raise ShapeError(f"shape {list(self.shape)} is too large: every dimension and "
                             f"the element count must be below 2**48")

    @classmethod
    def of(cls, array) -> TensorType:
        array = np.asarray(array)
        return cls(array.shape, dtype_name(array.dtype))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * self.np_dtype.itemsize

    def with_shape(self, shape) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"
