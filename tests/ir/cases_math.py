"""Cases for trigonometry, hyperbolic functions, round and the integer bit operators (see
cases.py): onnxruntime's Sin, Round, BitwiseAnd, BitShift, BitCast, ... are the peers."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from .cases import N, case, f32, randint, uniform

X = uniform(-7, 7, 2, 3, 5)
UNIT = np.concatenate([uniform(-0.999, 0.999, 15), f32([0.0, -0.0, 1.0, -1.0, 1.5])])
# float64: onnxruntime's CPU provider has double Sin, Cos, Sinh, Cosh, ... but not every one
for _op, _onnx, _x in [("sin", "Sin", X), ("cos", "Cos", X), ("tan", "Tan", X),
                       ("atan", "Atan", X), ("sinh", "Sinh", X), ("cosh", "Cosh", X),
                       ("asinh", "Asinh", X * 3), ("asin", "Asin", UNIT),
                       ("acos", "Acos", UNIT), ("atanh", "Atanh", UNIT),
                       ("acosh", "Acosh", uniform(1, 30, 17))]:
    case(_op, "f32", {"x": _x}, N(_onnx, "x"))
case("sin", "large", {"x": f32([1e3, -3e4, 1e5, 7e5, 1e7, math.pi, -math.pi / 2])},
     N("Sin", "x"))
case("cos", "special", {"x": f32([0.0, -0.0, math.inf, -math.inf, math.nan, 1e6])},
     N("Cos", "x"))
case("sin", "f64", {"x": X.astype(np.float64)}, N("Sin", "x"), rtol=1e-12, atol=1e-15)
case("cos", "f64", {"x": X.astype(np.float64)}, N("Cos", "x"), rtol=1e-12, atol=1e-15)
case("round", "halves", {"x": f32([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.7, 8e6 + 1,
                                   math.inf, math.nan])}, N("Round", "x"))
case("round", "f32", {"x": X}, N("Round", "x"))

# ---- bit operators (onnxruntime: int32/int64; BitShift on unsigned types only) ---------------
A32 = randint(-2**31, 2**31, 3, 4, dtype=np.int32)
B32 = randint(-2**31, 2**31, 4, dtype=np.int32)
A64 = randint(-2**62, 2**62, 2, 1, 3)
B64 = randint(-2**62, 2**62, 5, 1)
for _op, _onnx in [("bitwise_and", "BitwiseAnd"), ("bitwise_or", "BitwiseOr"),
                   ("bitwise_xor", "BitwiseXor")]:
    case(_op, "i32_row", {"a": A32, "b": B32}, N(_onnx, "a", "b"))
    case(_op, "i64_both", {"a": A64, "b": B64}, N(_onnx, "a", "b"))
case("bitwise_not", "i32", {"x": A32}, N("BitwiseNot", "x"))
case("bitwise_not", "i64", {"x": A64}, N("BitwiseNot", "x"))


def _unsigned_shift(direction, dtype, unsigned):
    """The peer: through the unsigned type of the same size (the same bits)."""
    return [N("Cast", "a", out="ua", to=unsigned), N("Cast", "b", out="ub", to=unsigned),
            N("BitShift", "ua", "ub", out="uy", direction=direction),
            N("Cast", "uy", to=dtype)]


# a right shift is arithmetic: the peer (logical) agrees on non-negative values
case("bit_shift", "left_i32", {"a": A32, "b": randint(0, 32, 4, dtype=np.int32)},
     _unsigned_shift("LEFT", TensorProto.INT32, TensorProto.UINT32),
     attrs={"direction": "left"})
case("bit_shift", "right_i32", {"a": np.abs(A32 // 2), "b": randint(0, 32, 3, 1,
                                                                     dtype=np.int32)},
     _unsigned_shift("RIGHT", TensorProto.INT32, TensorProto.UINT32),
     attrs={"direction": "right"})
case("bit_shift", "left_i64", {"a": A64, "b": randint(0, 64, 3)},
     _unsigned_shift("LEFT", TensorProto.INT64, TensorProto.UINT64),
     attrs={"direction": "left"})

# ---- bitcast (ONNX's BitCast is opset 26) ----------------------------------------------------
_BITS = f32([1.0, -0.0, 0.0, math.inf, -2.5, 1e-40, 3.4e38])
case("bitcast", "f32_to_i32", {"x": _BITS}, N("BitCast", "x", to=TensorProto.INT32),
     attrs={"dtype": "i32"}, opset=26)
case("bitcast", "i64_to_f64", {"x": np.array([0, 1, 4607182418800017408, -2**63, 2**62 + 7],
                                               np.int64)},
     N("BitCast", "x", to=TensorProto.DOUBLE), attrs={"dtype": "f64"}, opset=26)
