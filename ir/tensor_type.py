"""Tensor types: a shape and a dtype, mandatory on every value."""

from __future__ import annotations

import math
import re
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
    # 8-bit integers: the storage of quantized tensors (ir/ops/quant.py). Not in INTS, so
    # operators wanting floats or i32/i64 (indices, shapes) refuse them; the LLVM backend
    # computes u8 only in the lowerings written for it (backends/llvm/registry.U8_LOWERINGS).
    "i8": np.dtype(np.int8),
    "u8": np.dtype(np.uint8),
}
_NAMES = {v: k for k, v in DTYPES.items()}
FLOATS = ("f32", "f64")
MAX_DIM = 2**48  # bound on a dimension: byte offsets stay far from 2**63
# Bound on one tensor's bytes: beyond any one buffer a machine holds, so a huge declared size
# (Expand to [2**40], Pad by 2**40) is refused by shape inference, naming the node, before
# anything tries to allocate it. What a smaller machine cannot hold, the backend refuses.
MAX_BYTES = 2**40
INTS = ("i32", "i64")


def format_bytes(n: int) -> str:
    """A byte count for people: 512 bytes, 4 MiB, 1.5 GiB, 32 EiB, 2**124 bytes."""
    if n >= 2**70:  # a product of huge dimensions: too large for a float
        return f"2**{n.bit_length() - 1} bytes" if n & (n - 1) == 0 else \
            f"over 2**{n.bit_length() - 1} bytes"
    k = 0
    while k < len(_UNITS) - 1 and n >= 1024 ** (k + 1):
        k += 1
    return f"{n} bytes" if k == 0 else f"{n / 1024**k:.3g} {_UNITS[k]}"


_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def check_size(shape, itemsize: int, what: str = "shape") -> None:
    """ShapeError for a shape no tensor may have: a negative or huge dimension, or more than
    MAX_BYTES bytes with elements of `itemsize` bytes. Python integers: no overflow."""
    shape = [int(d) for d in shape]
    if any(d < 0 for d in shape):
        raise ShapeError(f"negative dimension in {what} {shape}")
    nbytes = math.prod(shape) * itemsize
    if nbytes > MAX_BYTES:
        raise ShapeError(f"{what} {shape} is too large: {format_bytes(nbytes)}, more than the "
                         f"{format_bytes(MAX_BYTES)} one tensor may hold")
    if any(d >= MAX_DIM for d in shape):  # an empty tensor with a huge dimension
        raise ShapeError(f"{what} {shape} is too large: each dimension must be below 2**48")


def dtype_name(dtype) -> str:
    """The IR name of a numpy dtype, or ShapeError if the IR has no such type."""
    try:
        return _NAMES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise ShapeError(f"unsupported dtype {dtype!r}; supported: {', '.join(DTYPES)}") from None


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _dim(d) -> int | str:
    """A dimension: a size, or the name of a symbolic one (`N`, `batch_size`)."""
    if isinstance(d, str):
        if not _SYMBOL.fullmatch(d):
            raise ShapeError(f"a symbolic dimension is named like an identifier, got {d!r}")
        return d
    return int(d)


@dataclass(frozen=True)
class TensorType:
    """A dtype and a shape. A dimension is a size, or the name of a symbolic dimension
    (`f32[N,3,224,224]`) in a signature that serves every size of it: such a type is
    `bind`-ed to sizes before anything is computed with it (graphs hold static types)."""

    shape: tuple[int | str, ...]
    dtype: str = "f32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(_dim(d) for d in self.shape))
        if self.dtype not in DTYPES:
            raise ShapeError(f"unsupported dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        check_size([d for d in self.shape if isinstance(d, int)], DTYPES[self.dtype].itemsize)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The names of the symbolic dimensions, in order."""
        return tuple(d for d in self.shape if isinstance(d, str))

    @property
    def is_static(self) -> bool:
        return not self.symbols

    def bind(self, sizes: dict[str, int]) -> TensorType:
        """This type with its symbolic dimensions replaced by `sizes[name]`."""
        missing = [s for s in self.symbols if s not in sizes]
        if missing:
            raise ShapeError(f"{self}: no size given for {', '.join(missing)}")
        return TensorType(tuple(sizes[d] if isinstance(d, str) else d for d in self.shape),
                          self.dtype)

    @classmethod
    def of(cls, array) -> TensorType:
        array = np.asarray(array)
        return cls(array.shape, dtype_name(array.dtype))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        if not self.is_static:
            raise ShapeError(f"{self} has symbolic dimensions: bind them to sizes first")
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
