"""Integer bit operators (and, or, xor, not, shifts) and the bit reinterpretation `bitcast`.

They take i32/i64 operands (numpy broadcasting for the binary ones). `bit_shift` is numpy's
(a right shift is arithmetic, as ONNX's BitShift on signed types; the unsigned types the
ONNX importer reads widened hold non-negative values, where it is also the logical one),
with a count past the width defined (not C's undefined behaviour): a left shift gives 0, a
right shift the sign. `bitcast` keeps the bits and changes the type between types of one
size (f32/i32, f64/i64).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..tensor_type import DTYPES, INTS, TensorType
from .elementwise import _typed
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import broadcast, same_dtype


def _ints(name: str, *types: TensorType) -> str:
    dtype = same_dtype(*types)
    if dtype not in INTS:
        raise ShapeError(f"{name} takes integer (i32/i64) operands, got {dtype}")
    return dtype


def _binary(name: str, fn, doc: str, attrs=None, commutative=True):
    def infer(a, b, **_):
        return TensorType(broadcast(a, b), _ints(name, a, b))

    register(OpDef(name=name, infer=infer, compute=_typed(fn), attrs=attrs or {},
                   arity=(2, 2), fusion=Fusion.BROADCAST, doc=doc, commutative=commutative))


_binary("bitwise_and", np.bitwise_and, "a & b")
_binary("bitwise_or", np.bitwise_or, "a | b")
_binary("bitwise_xor", np.bitwise_xor, "a ^ b")

register(OpDef(
    name="bitwise_not",
    infer=lambda x: TensorType(x.shape, _ints("bitwise_not", x)),
    compute=_typed(np.invert),
    arity=(1, 1),
    fusion=Fusion.ELEMENTWISE,
    doc="~x (every bit flipped)"))


def _shift(x, s, direction):
    """numpy's x << s and x >> s (arithmetic: the sign fills in), with counts read as
    unsigned: past the width, a left shift gives 0 and a right shift the sign (0 or -1)."""
    x, s = np.broadcast_arrays(x, s)
    bits = 8 * x.dtype.itemsize
    count = s.astype(np.dtype(f"u{x.dtype.itemsize}"))  # a negative count is huge
    if direction == "left":
        return np.where(count < bits, np.left_shift(x, np.minimum(count, bits - 1).astype(
            x.dtype)), 0).astype(x.dtype)
    return np.right_shift(x, np.minimum(count, bits - 1).astype(x.dtype))


_binary("bit_shift", _shift,
        "x << y or x >> y (arithmetic); counts past the width give 0 or the sign",
        attrs={"direction": Attr("str", "left", lambda v: v in ("left", "right"),
                                 "'left' or 'right'")},
        commutative=False)

# bitcast pairs: types of one size that both hold numbers
_SAME_SIZE = {"f32": "i32", "i32": "f32", "f64": "i64", "i64": "f64"}


def _bitcast_infer(x, dtype):
    if dtype != x.dtype and _SAME_SIZE.get(x.dtype) != dtype:
        raise ShapeError(f"bitcast of {x.dtype} to {dtype}: it reinterprets f32/i32 and "
                         "f64/i64 as each other")
    return TensorType(x.shape, dtype)


register(OpDef(
    name="bitcast",
    infer=_bitcast_infer,
    compute=lambda x, dtype: x.copy(order="C").view(DTYPES[dtype]),
    attrs={"dtype": Attr("str", "i32", lambda v: v in _SAME_SIZE, "f32, i32, f64 or i64")},
    arity=(1, 1),
    fusion=Fusion.ELEMENTWISE,
    doc="the same bits read as another type of the same size (f32/i32, f64/i64)"))
