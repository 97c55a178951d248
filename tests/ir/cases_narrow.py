"""round_to_format cases: onnxruntime's Cast to the narrow type and back is the peer.

float8 with and without saturation (opset 19's Cast), float8e8m0 (opset 24), int4/uint4
from integers (wrapping, opset 21) and from floats inside their range (where ONNX defines
the Cast; outside it, onnxruntime wraps and ONNX's reference gives 0: the importer's
conformance cases and tests/compiler/test_onnx_narrow_types.py check that side). float4
and int2 have no onnxruntime kernel here; test_onnx_narrow_types.py checks them.
"""

import numpy as np
from onnx import TensorProto

from .cases import N, case, randint, randn

# every binade from below the subnormals past the largest value, signs, ties, specials
_X = np.concatenate([randn(40) * np.float32(10) ** randint(-6, 6, 40).astype(np.float32),
                     np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 448, 464, 465, 480, 240,
                               248, 57344, 61440, 1e-9, -1e-9, 2**-10, 3 * 2**-11, 0.3125],
                              np.float32)]).astype(np.float32)
_FLOAT8 = {"float8_e4m3fn": TensorProto.FLOAT8E4M3FN,
           "float8_e4m3fnuz": TensorProto.FLOAT8E4M3FNUZ,
           "float8_e5m2": TensorProto.FLOAT8E5M2, "float8_e5m2fnuz": TensorProto.FLOAT8E5M2FNUZ}


def _through(to, back=TensorProto.FLOAT, **attrs):
    return [N("Cast", "x", out="q", to=to, **attrs), N("Cast", "q", to=back)]


# onnxruntime turns two overflows ONNX's table sends to NaN (e4m3fn's 480, whose rounding
# is past 448) and to inf (e5m2's 61440, a tie rounding to 65536) into 448 and NaN without
# saturation; ml_dtypes and the table agree with Lamina (test_onnx_narrow_types.py)
_ORT_DIFFERS = np.isin(_X, [480, 61440])
for _name, _to in _FLOAT8.items():
    for _sat in (True, False):
        case("round_to_format", f"{_name}-{'saturate' if _sat else 'no-saturate'}",
             {"x": _X if _sat else _X[~_ORT_DIFFERS]},
             _through(_to, saturate=int(_sat)), attrs={"format": _name, "saturate": _sat},
             rtol=0, atol=0)
case("round_to_format", "float8_e4m3fn-f64", {"x": _X.astype(np.float64) * 1.0001},
     _through(TensorProto.FLOAT8E4M3FN, TensorProto.DOUBLE, saturate=1),
     attrs={"format": "float8_e4m3fn"}, rtol=0, atol=0)
_POSITIVE = np.abs(_X[np.isfinite(_X) & (_X != 0)])
for _mode in ("up", "down", "nearest"):
    case("round_to_format", f"float8_e8m0fnu-{_mode}", {"x": _POSITIVE},
         _through(TensorProto.FLOAT8E8M0, saturate=1, round_mode=_mode),
         attrs={"format": "float8_e8m0fnu", "round_mode": _mode}, rtol=0, atol=0, opset=24)
for _name, _to in (("int4", TensorProto.INT4), ("uint4", TensorProto.UINT4)):
    case("round_to_format", f"{_name}-i32", {"x": randint(-300, 300, 3, 17, dtype=np.int32)},
         _through(_to, TensorProto.INT32), attrs={"format": _name})
    case("round_to_format", f"{_name}-i64", {"x": randint(-300, 300, 19, dtype=np.int64)},
         _through(_to, TensorProto.INT64), attrs={"format": _name})
# whole numbers only: onnxruntime rounds a fraction to the nearest integer here, where its
# Cast to int32 (and ml_dtypes', and so ONNX's reference's, to int4) truncates
case("round_to_format", "int4-f32-in-range", {"x": np.arange(-8, 8, dtype=np.float32)},
     _through(TensorProto.INT4), attrs={"format": "int4"}, rtol=0, atol=0)
case("round_to_format", "uint4-f32-in-range", {"x": np.arange(0, 16, dtype=np.float32)},
     _through(TensorProto.UINT4), attrs={"format": "uint4"}, rtol=0, atol=0)
