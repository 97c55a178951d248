"""Small shape and dtype rules shared by the operator declarations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..tensor_type import FLOATS, INTS, TensorType


def floats(*types: TensorType) -> str:
    """The common float dtype of the operands (they must agree)."""
    dtype = same_dtype(*types)
    if dtype not in FLOATS:
        raise ShapeError(f"expects floating-point operands, got {dtype}")
    return dtype


def same_dtype(*types: TensorType) -> str:
    dtypes = {t.dtype for t in types if t is not None}
    if len(dtypes) != 1:
        raise ShapeError(f"operands must share one dtype, got {', '.join(map(str, types))}")
    return dtypes.pop()


def integer(t: TensorType, what: str) -> None:
    if t.dtype not in INTS:
        raise ShapeError(f"{what} must be integer (i32/i64), got {t}")


def broadcast(*types: TensorType) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*(t.shape for t in types)))
    except ValueError:
        raise ShapeError(
            f"shapes {', '.join(str(list(t.shape)) for t in types)} do not broadcast"
        ) from None


def axis(a: int, rank: int, what: str = "axis") -> int:
    if not -rank <= a < max(rank, 1):
        raise ShapeError(f"{what} {a} is out of range for rank {rank}")
    return a % rank if rank else 0


def axes(items: Sequence[int], rank: int) -> tuple[int, ...]:
    out = tuple(sorted({axis(a, rank) for a in items}))
    if len(out) != len(items):
        raise ShapeError(f"repeated axis in {list(items)}")
    return out


def rank_at_least(t: TensorType, n: int, what: str) -> None:
    if t.rank < n:
        raise ShapeError(f"{what} needs rank >= {n}, got {t}")


def window_out(size: int, k: int, s: int, pad_lo: int, pad_hi: int, d: int = 1,
               ceil: bool = False) -> int:
    """Output length of a sliding window (conv or pool), torch's ceil_mode rule included."""
    span = size + pad_lo + pad_hi - d * (k - 1) - 1
    if span < 0:
        raise ShapeError(f"window {k} (dilation {d}) is larger than the padded input {size}")
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pad_lo:  # the last window must start inside
        out -= 1
    return out


positive = (lambda v: all(x > 0 for x in v), "every entry must be positive")
non_negative = (lambda v: all(x >= 0 for x in v), "no entry may be negative")
pair = (lambda v: len(v) == 2 and all(x > 0 for x in v), "two positive integers")
quad = (lambda v: len(v) == 4 and all(x >= 0 for x in v), "four non-negative integers "
        "[top, left, bottom, right]")
